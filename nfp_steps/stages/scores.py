"""Stage "scores": heuristic induction scores (prevTok, indScore, kComp, δ, Effect).

prevTok, indScore, δ and Effect are computed on every prompt of the scoring batch
(``prompt.batch`` prompts drawn here, stored as ``batch_tokens``; prompt 0 from
the forward store, the others by their own forward pass) and stored as mean (the name the
ranking reads), standard deviation (``_sd``) and per-prompt values (``_batch``); kComp depends
on the weights only; ‖x_l‖_F and ‖Z_l‖_F are the analysed prompt's.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, tokens, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import scores as S
    from nfp_steps.forward import run_forward
    from nfp_steps.prompt import make_prompt_batch

    w = weights(inputs)
    fw = inputs["forward"]
    attn, z1, x = fw["attn"].values, fw["z1"].values, fw["x"].values
    # the batch is drawn here from the prompt slice (so editing prompt.batch reruns the scores
    # and what follows, not the bound stages); its row 0 is the prompt stage's analysed prompt
    batch = make_prompt_batch(cfg, w)
    analysed = tokens(inputs)
    if (batch is None) != (analysed is None) or (
            batch is not None and not np.array_equal(batch[0], analysed)):
        raise ValueError("scores: prompt 0 of the scoring batch differs from the prompt stage's "
                         "tokens (the prompt config changed without rerunning the prompt stage?)")
    ind = cfg["induction"]
    per_prompt, targets = [], []
    for b in range(1 if batch is None else len(batch)):
        toks = None if batch is None else batch[b]
        if b == 0:
            a_b, z_b = attn, z1
        else:
            t = run_forward(w, toks)
            a_b, z_b = t.attn, t.z1
        sc, target, warn = S.prompt_scores(w, toks, a_b, z_b, ind["correct"], ind["incorrect"])
        per_prompt.append(sc)
        targets.append(target)
        if b == 0:
            target0, warnings = target, warn
    summary = S.batch_summary(per_prompt)
    u = w.W_U[:, target0.correct] - w.W_U[:, target0.incorrect]
    raw, kc = S.kcomp_scores(w, fold_ln=ind["kcomp"] == "ln_fold")
    data = {}
    for name, v in summary.items():
        dims = ("prompt", "layer", "head") if name.endswith("_batch") else ("layer", "head")
        data[name] = (dims, v)
    data.update({
        "kCompRaw": (("layer1", "head1", "layer2", "head2"), raw),
        "kComp": (("layer1", "head1", "layer2", "head2"), kc),
        "x_frob": ("layer", np.linalg.norm(x[:-1], axis=(1, 2))),
        "z_frob": ("layer", np.linalg.norm(z1, axis=(1, 2))),
        "u": ("d_model", u),
        "target_correct_batch": ("prompt", np.array([t.correct for t in targets])),
        **({"batch_tokens": (("prompt", "pos"), batch)} if batch is not None else {}),
        "target_incorrect_batch": ("prompt", np.array([t.incorrect for t in targets])),
    })
    ds = xr.Dataset(data)
    ds.attrs.update(target_correct=target0.correct, target_incorrect=target0.incorrect,
                    target_description=target0.description, warnings=json.dumps(warnings),
                    target_source=("flags" if ind["correct"] is not None else
                                   "history" if batch is not None else "fallback"),
                    n_prompts=len(per_prompt), kcomp=ind["kcomp"],
                    heuristic=["prevTok", "indScore", "kComp", "kCompRaw", "delta", "effect"])
    return StageResult(ds, {})

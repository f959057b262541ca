"""Stage functions of the DAG: datasets in, datasets (and report texts) out; no file access
except ``stage_export`` reading the model source.

Each function has the signature of :class:`nfp_steps.stage_specs.Stage` and is called by
``run_stage`` (one Snakemake job) or by :func:`run_in_memory` (the CLI).
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from nfp_steps.model import GPT2Weights, ModelError
from nfp_steps.stage_specs import STAGES, StageResult

Inputs = dict[str, xr.Dataset]


def _weights(inputs: Inputs) -> GPT2Weights:
    from nfp_steps.io.zarr_store import dataset_to_weights

    return dataset_to_weights(inputs["export"])


def _tokens(inputs: Inputs) -> np.ndarray | None:
    ds = inputs["prompt"]
    return ds["tokens"].values.astype(np.int64) if bool(ds.attrs["has_tokens"]) else None


def stage_export(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    """Read the model source named in ``models.<model>`` into the weights store."""
    from nfp_steps.io.loader import load_model
    from nfp_steps.io.zarr_store import weights_to_dataset

    src = cfg["models"][model]
    return StageResult(weights_to_dataset(load_model(src)), {})


def stage_prompt(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.data import induction_positions
    from nfp_steps.prompt import make_prompt

    w = _weights(inputs)
    toks = make_prompt(cfg, w)
    if toks is None:
        n = w.embeddings.shape[0]
        ds = xr.Dataset({"tokens": ("pos", np.full(n, -1, dtype=np.int64)),
                         "induction_position": ("pos", np.zeros(n, dtype=bool))})
        ds.attrs.update(has_tokens=False, kind="baked-embeddings")
    else:
        ds = xr.Dataset({"tokens": ("pos", toks),
                         "induction_position": ("pos", induction_positions(toks))})
        kind = "baked-tokens" if w.embeddings is not None else cfg["prompt"]["kind"]
        ds.attrs.update(has_tokens=True, kind=kind)
    return StageResult(ds, {})


def stage_forward(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.forward import run_forward

    w = _weights(inputs)
    t = run_forward(w, _tokens(inputs))
    logits = t.logits[-1:] if cfg["forward"]["logits"] == "last" else t.logits
    n = t.x.shape[1]
    ds = xr.Dataset({
        "x": (("layer_io", "pos", "d_model"), t.x),
        "z1": (("layer", "pos", "d_model"), t.z1),
        "y": (("layer", "pos", "d_model"), t.y),
        "z2": (("layer", "pos", "d_model"), t.z2),
        "pre": (("layer", "pos", "d_mlp"), t.pre),
        "attn": (("layer", "head", "query", "key"), t.attn),
        "final": (("pos", "d_model"), t.final),
        "logits": (("logit_pos", "vocab"), logits),
        "logit_positions": ("logit_pos", np.arange(n - len(logits), n)),
    })
    return StageResult(ds, {})


def stage_layernorm(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B

    w = _weights(inputs)
    fw = inputs["forward"]
    x, y = fw["x"].values[:-1], fw["y"].values
    eps = w.eps
    ln1_rows = np.stack([B.layernorm_row_ub(x[i], w.ln1_g[i], eps) for i in range(w.n_layers)])
    ln2_rows = np.stack([B.layernorm_row_ub(y[i], w.ln2_g[i], eps) for i in range(w.n_layers)])
    ln1_glob = np.array([B.layernorm_global_ub(w.ln1_g[i], eps) for i in range(w.n_layers)])
    ln2_glob = np.array([B.layernorm_global_ub(w.ln2_g[i], eps) for i in range(w.n_layers)])
    local = cfg["bounds"]["layernorm"]["mode"] == "local"
    ds = xr.Dataset({
        "ln1_var_lb": (("layer", "pos"), np.stack([B.variance_lb(r) for r in x])),
        "ln2_var_lb": (("layer", "pos"), np.stack([B.variance_lb(r) for r in y])),
        "ln1_row_ub": (("layer", "pos"), ln1_rows),
        "ln2_row_ub": (("layer", "pos"), ln2_rows),
        "ln1_local_ub": ("layer", ln1_rows.max(axis=1)),
        "ln2_local_ub": ("layer", ln2_rows.max(axis=1)),
        "ln1_global_ub": ("layer", ln1_glob),
        "ln2_global_ub": ("layer", ln2_glob),
        "ln1_ub": ("layer", ln1_rows.max(axis=1) if local else ln1_glob),
        "ln2_ub": ("layer", ln2_rows.max(axis=1) if local else ln2_glob),
    })
    ds.attrs["mode"] = cfg["bounds"]["layernorm"]["mode"]
    return StageResult(ds, {})


HEAD_TSV = ("eps_ub", "value_lb", "value_ub", "pattern_ub", "attn_norm_lb", "attn_norm_ub",
            "qk_lb", "qk_ub", "vo_lb", "vo_ub", "z_norm_ub")


def stage_heads(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B

    w = _weights(inputs)
    z1 = inputs["forward"]["z1"].values
    res: dict[str, np.ndarray] = {}
    for layer in range(w.n_layers):
        for h in range(w.n_heads):
            hb = B.head_bounds(
                z1[layer], w.W_Q[layer, h], w.b_Q[layer, h], w.W_K[layer, h], w.b_K[layer, h],
                w.W_V[layer, h], w.W_O[layer, h],
            )
            for k, v in hb.items():
                res.setdefault(k, np.zeros((w.n_layers, w.n_heads)))[layer, h] = v
    ds = xr.Dataset({k: (("layer", "head"), v) for k, v in res.items()})
    lines = ["layer\thead\t" + "\t".join(HEAD_TSV)]
    for layer in range(w.n_layers):
        for h in range(w.n_heads):
            lines.append(f"{layer}\t{h}\t" + "\t".join(repr(float(res[k][layer, h]))
                                                       for k in HEAD_TSV))
    return StageResult(ds, {"heads.tsv": "\n".join(lines) + "\n"})


def stage_layers(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B
    from nfp_steps import rigor as R

    w = _weights(inputs)
    ln, hd = inputs["layernorm"], inputs["heads"]
    L = w.n_layers
    a = np.zeros(L)
    m = np.zeros(L)
    c = np.zeros(L)
    win = np.zeros(L)
    wout = np.zeros(L)
    for i in range(L):
        heads_sum = float(R.sum_nonneg_ub(R.add_up(hd["value_ub"].values[i],
                                                   hd["pattern_ub"].values[i])))
        a[i] = float(R.mul_up(float(ln["ln1_ub"].values[i]), heads_sum))
        win[i] = B.opnorm_ub(w.W_in[i])
        wout[i] = B.opnorm_ub(w.W_out[i])
        m[i] = float(R.mul_up(R.mul_up(float(ln["ln2_ub"].values[i]), win[i]),
                              R.mul_up(B.GELU_DERIV_SUP, wout[i])))
        c[i] = B.layer_constant(a[i], m[i])
    prefix = np.ones(L + 1)
    for i in range(L):
        prefix[i + 1] = float(R.mul_up(prefix[i], R.add_up(1.0, c[i])))
    suffix = np.ones(L + 1)
    for i in range(L - 1, -1, -1):
        suffix[i] = float(R.mul_up(suffix[i + 1], R.add_up(1.0, c[i])))
    ds = xr.Dataset({
        "attn_ub": ("layer", a), "mlp_ub": ("layer", m), "C_ub": ("layer", c),
        "W_in_ub": ("layer", win), "W_out_ub": ("layer", wout),
        "prefix_ub": ("layer_io", prefix), "suffix_ub": ("layer_io", suffix),
    })
    ds.attrs["gelu_deriv_sup"] = B.GELU_DERIV_SUP
    lines = ["layer\tattn_ub\tmlp_ub\tC_ub"]
    for i in range(L):
        # Certified lower bounds on ‖J_l − I‖ and the adaptive tiers come with issue 4.
        lines.append(f"{i}\t{float(a[i])!r}\t{float(m[i])!r}\t{float(c[i])!r}")
    return StageResult(ds, {"layers.tsv": "\n".join(lines) + "\n"})


def stage_scores(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import scores as S

    w = _weights(inputs)
    fw = inputs["forward"]
    attn, z1, x = fw["attn"].values, fw["z1"].values, fw["x"].values
    toks = _tokens(inputs)
    ind = cfg["induction"]
    target, warnings = S.resolve_target(toks, w.vocab_size, ind["correct"], ind["incorrect"])
    u = w.W_U[:, target.correct] - w.W_U[:, target.incorrect]
    delta, effect = S.direct_effects(w, z1, attn, u)
    raw, kc = S.kcomp_scores(w)
    ind_score = (S.induction_scores(attn, toks) if toks is not None
                 else np.ones((w.n_layers, w.n_heads)))
    ds = xr.Dataset({
        "prevTok": (("layer", "head"), S.prev_token_scores(attn)),
        "indScore": (("layer", "head"), ind_score),
        "kCompRaw": (("layer1", "head1", "layer2", "head2"), raw),
        "kComp": (("layer1", "head1", "layer2", "head2"), kc),
        "delta": (("layer", "head"), delta),
        "effect": (("layer", "head"), effect),
        "x_frob": ("layer", np.linalg.norm(x[:-1], axis=(1, 2))),
        "z_frob": ("layer", np.linalg.norm(z1, axis=(1, 2))),
        "u": ("d_model", u),
    })
    ds.attrs.update(target_correct=target.correct, target_incorrect=target.incorrect,
                    target_description=target.description, warnings=json.dumps(warnings))
    return StageResult(ds, {})


def ranking_rows(inputs: Inputs, cfg: dict) -> list[dict]:
    from nfp_steps.ranking import rank_pairs

    sc, hd, rk = inputs["scores"], inputs["heads"], cfg["ranking"]
    return rank_pairs(
        sc["prevTok"].values, sc["indScore"].values, sc["kComp"].values, sc["kCompRaw"].values,
        sc["delta"].values, sc["effect"].values, hd["eps_ub"].values, sc["x_frob"].values,
        sc["z_frob"].values, min_prev_tok=rk["min_prev_tok"], min_ind_score=rk["min_ind_score"],
        threshold=rk["threshold"],
    )


def stage_ranking(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.ranking import COLUMNS, induction_report, to_tsv

    rows = ranking_rows(inputs, cfg)
    sc = inputs["scores"]
    ds = xr.Dataset({
        c: ("pair", np.array([r[c] for r in rows],
                             dtype=np.int64 if c in ("rank", "l1", "h1", "l2", "h2") else float))
        for c in COLUMNS
    })
    text = induction_report(rows, sc.attrs["target_description"], cfg["ranking"]["threshold"],
                            cfg["ranking"]["top"], verbose=True,
                            warnings=json.loads(sc.attrs["warnings"]))
    return StageResult(ds, {"ranking.tsv": to_tsv(rows), "induction.txt": text})


def _rows_from_ranking(ds: xr.Dataset) -> list[dict]:
    """One dict per pair, Python scalars (strings come back from Zarr as ``str`` already)."""
    cols = {c: ds[c].values for c in ds.data_vars}
    return [{c: (v[i].item() if isinstance(v[i], np.generic) else v[i]) for c, v in cols.items()}
            for i in range(ds.sizes.get("pair", 0))]


def stage_verify(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.verify import COLUMNS, to_tsv, verify_pairs

    w = _weights(inputs)
    rows = _rows_from_ranking(inputs["ranking"])[: cfg["verify"]["top"]]
    pairs = [(r["l1"], r["h1"], r["l2"], r["h2"]) for r in rows]
    toks = _tokens(inputs)
    fw = inputs["forward"]
    if toks is not None and len(toks) >= 2:
        from nfp_steps.scores import TargetError, target_from_history

        try:
            target = target_from_history(toks, w.vocab_size).correct
        except TargetError:
            target = int(np.argmax(fw["logits"].values[-1]))
    else:
        target = int(np.argmax(fw["logits"].values[-1]))
    vrows = verify_pairs(w, toks, pairs, target) if pairs else []
    data = {}
    for c in COLUMNS:
        vals = [r[c] for r in vrows]
        data[c] = ("pair", np.array(vals, dtype=str if c == "control" else
                                    (np.int64 if isinstance(vals[0] if vals else 0, int)
                                     else float)))
    return StageResult(xr.Dataset(data), {"verify.tsv": to_tsv(vrows)})


def stage_certificate(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.certificate import build_certificate, dumps, product_one_plus_ub

    ly = inputs["layers"]
    w_attrs = inputs["export"].attrs
    c = ly["C_ub"].values
    cert, text = build_certificate(model, str(w_attrs.get("source_sha256", "")), None, c,
                                   ly["attn_ub"].values, ly["mlp_ub"].values)
    ds = xr.Dataset({"C_ub": ("layer", c),
                     "total_ub": ((), product_one_plus_ub(c))})
    return StageResult(ds, {"certificate.json": dumps(cert), "certificate.txt": text})


def stage_report(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.report import summary_text

    rows = _rows_from_ranking(inputs["ranking"])
    vrows = _rows_from_ranking(inputs["verify"])
    c = inputs["layers"]["C_ub"].values
    total = float(inputs["certificate"]["total_ub"].values)
    text = summary_text(model, rows, c, vrows, total)
    ds = xr.Dataset({"n_pairs": ((), len(rows))})
    return StageResult(ds, {"summary.txt": text})


def run_in_memory(cfg: dict, model: str, until: str = "ranking") -> dict[str, StageResult]:
    """Run the stages up to ``until`` (inclusive, with their upstream) without touching disk."""
    import importlib

    order = list(STAGES)
    needed: set[str] = set()

    def need(name: str) -> None:
        if name not in needed:
            needed.add(name)
            for up in STAGES[name].inputs:
                need(up)

    need(until)
    out: dict[str, StageResult] = {}
    for name in order:
        if name not in needed:
            continue
        spec = STAGES[name]
        mod, fn = spec.func.split(":")
        func = getattr(importlib.import_module(f"nfp_steps.{mod}"), fn)
        out[name] = func({k: out[k].dataset for k in spec.inputs}, cfg, model)
    return out


__all__ = ["ModelError", "run_in_memory"]

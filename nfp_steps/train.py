"""Trainer of the embedded toy model: a small GPT-2 with a genuine two-layer induction circuit.

Why two phases: with MLPs active from the start, small models on this data tend to settle on
positional tricks or sit on the loss plateau for thousands of steps. Phase 1 trains with the MLP
outputs frozen at zero (attention only), where a previous-token head in an early layer and an
induction head in a later layer form within about a thousand steps. Phase 2 then trains the whole
model briefly (MLP output weights start at zero, so phase 2 starts from the same function) while
the circuit is re-measured on held-out non-periodic data; if a later check fails, the last
checkpoint that passed is kept.

Everything is reproducible from the seed: parameters are initialised from a seeded
``torch.Generator``, batches come from seeded numpy generators (:mod:`nfp_steps.data`), there is
no dropout, torch runs with deterministic algorithms and a fixed thread count. Bitwise equality
is expected on the same torch build and CPU type.

The result is an HF GPT-2 folder (config.json + model.safetensors, float32, tied wte/lm_head)
plus TRAINING.md with the command and the measured circuit scores.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nfp_steps import data

if TYPE_CHECKING:  # torch is imported inside the functions: `nfp --help` must stay fast
    import torch

    from nfp_steps.torch_gpt2 import TorchParams

# Circuit criteria (the shipped-model test asserts the first three on other held-out data).
PREV_MIN = 0.4  # some early-layer head: prevTok >= this
IND_MIN = 0.4  # some later-layer head: indScore >= this
ABLATE_IND = 0.2  # later-layer heads with indScore >= this are ablated together
ABLATION_MIN_NATS = 1.0  # ... and the loss on repeated tokens must rise by at least this


@dataclass(frozen=True)
class ToyConfig:
    """Every setting of a training run (the CLI flags, one to one)."""

    seed: int = 0
    steps: int = 1500  # phase 1: attention only
    mlp_steps: int = 300  # phase 2: everything, circuit monitored
    layers: int = 2
    width: int = 64
    heads: int = 4
    mlp_ratio: int = 4
    vocab: int = 128
    seq_len: int = 64
    batch: int = 64
    qk_init_std: float = 0.15  # W_Q, W_K init (GPT-2's 0.02 sits on the plateau for > 4000 steps)
    lr: float = 1e-3
    mlp_lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100
    eval_every: int = 100
    eval_batches: int = 4
    threads: int = 1

    def validate(self) -> ToyConfig:
        """Raise ``ValueError`` naming the first bad setting."""
        positive = ("layers", "width", "heads", "mlp_ratio", "vocab", "seq_len", "batch",
                    "steps", "eval_every", "eval_batches", "threads")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
        for name in ("mlp_steps", "warmup"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
        if self.layers < 2:
            raise ValueError(f"--layers must be >= 2 for a two-layer circuit, got {self.layers}")
        if self.width % self.heads:
            raise ValueError(
                f"--width {self.width} is not divisible by --heads {self.heads} "
                "(head dimension = width / heads)"
            )
        if self.seq_len < 8:
            raise ValueError(f"--seq-len must be >= 8 (room for copies), got {self.seq_len}")
        if self.vocab < 4:
            raise ValueError(f"--vocab must be >= 4, got {self.vocab}")
        for name in ("lr", "mlp_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {v}")
        if not (math.isfinite(self.qk_init_std) and self.qk_init_std > 0):
            raise ValueError(f"--qk-init-std must be a positive number, got {self.qk_init_std}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        return self

    def command(self, output: str) -> str:
        """The exact ``nfp train-toy`` command that reproduces this run."""
        flags = [f"--output {output}"]
        for key, value in asdict(self).items():
            flags.append(f"--{key.replace('_', '-')} {value}")
        return "nfp train-toy " + " ".join(flags)


# ---- model ------------------------------------------------------------------------------------


def init_params(cfg: ToyConfig) -> TorchParams:
    """GPT-2 initialisation (N(0, 0.02), residual projections / √(2L)) from ``cfg.seed``,
    except W_Q and W_K: N(0, ``cfg.qk_init_std``).

    Why: the attention scores are bilinear in W_Q and W_K, so from GPT-2's tiny init every head
    stays near uniform and training sits on a plateau (seen here: no circuit after 4000 steps at
    lr 1e-3 or 3e-3, nor with sinusoidal or larger embeddings). With std 0.15 the scores start
    at O(1) and the circuit forms after about 1000 steps.

    MLP output weights start at zero: the MLPs are inactive in phase 1 and phase 2 starts from
    the phase-1 function. Unembedding is tied (no ``W_U``; logits use wteᵀ).
    """
    import torch

    from nfp_steps.torch_gpt2 import TorchParams

    g = torch.Generator().manual_seed(cfg.seed)
    L, H, d, V, n = cfg.layers, cfg.heads, cfg.width, cfg.vocab, cfg.seq_len
    dh, dff = d // H, cfg.mlp_ratio * d
    std, proj_std = 0.02, 0.02 / math.sqrt(2 * L)

    def normal(shape, s):
        return torch.randn(shape, generator=g, dtype=torch.float32) * s

    def zeros(shape):
        return torch.zeros(shape, dtype=torch.float32)

    def ones(shape):
        return torch.ones(shape, dtype=torch.float32)

    t = {
        "wte": normal((V, d), std),
        "wpe": normal((n, d), std),
        "W_Q": normal((L, H, d, dh), cfg.qk_init_std),
        "W_K": normal((L, H, d, dh), cfg.qk_init_std),
        "W_V": normal((L, H, d, dh), std),
        "b_Q": zeros((L, H, dh)),
        "b_K": zeros((L, H, dh)),
        "b_V": zeros((L, H, dh)),
        "W_O": normal((L, H, dh, d), proj_std),
        "b_O": zeros((L, d)),
        "ln1_g": ones((L, d)),
        "ln1_b": zeros((L, d)),
        "ln2_g": ones((L, d)),
        "ln2_b": zeros((L, d)),
        "W_in": normal((L, d, dff), std),
        "b_in": zeros((L, dff)),
        "W_out": zeros((L, dff, d)),
        "b_out": zeros((L, d)),
        "lnf_g": ones((d,)),
        "lnf_b": zeros((d,)),
    }
    return TorchParams(t, eps=1e-5, gelu_kind="tanh")


MLP_KEYS = ("ln2_g", "ln2_b", "W_in", "b_in", "W_out", "b_out")


# ---- circuit measurement ----------------------------------------------------------------------


def prev_token_scores(attn: np.ndarray) -> np.ndarray:
    """prevTok[l,h] = mean over batch and q ≥ 1 of A[q, q−1]; attn (B, L, H, n, n)."""
    n = attn.shape[-1]
    q = np.arange(1, n)
    return attn[..., q, q - 1].mean(axis=(0, -1))


def induction_scores(attn: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """indScore[l,h]: mean over queries q having an earlier occurrence k ≤ q−2 of tokens[q] of
    Σ_k A[q, k+1] (attention on the successors of all such occurrences); attn (B, L, H, n, n)."""
    B, n = tokens.shape
    q = np.arange(n)[:, None]
    k = np.arange(n)[None, :]
    occ = (tokens[:, :, None] == tokens[:, None, :]) & (k <= q - 2)  # (B, q, k)
    succ = np.zeros_like(occ)
    succ[:, :, 1:] = occ[:, :, :-1]  # mark k+1
    has = occ.any(axis=-1)  # (B, q)
    if not has.any():
        raise ValueError("no query has an earlier occurrence of its token; indScore undefined")
    mass = (attn * succ[:, None, None, :, :]).sum(axis=-1)  # (B, L, H, q)
    return (mass * has[:, None, None, :]).sum(axis=(0, -1)) / has.sum()


def repeated_token_loss(logits: torch.Tensor, tokens: np.ndarray) -> float:
    """Mean cross-entropy of the next token where induction predicts it correctly."""
    import torch

    mask, _ = data.induction_targets(tokens)
    if not mask.any():
        raise ValueError("no position whose next token is an induction prediction")
    logp = torch.log_softmax(logits[:, :-1].to(torch.float64), dim=-1)
    nxt = torch.as_tensor(tokens[:, 1:])
    nll = -logp.gather(-1, nxt[..., None])[..., 0]
    m = torch.as_tensor(mask[:, :-1])
    return float(nll[m].mean())


@dataclass
class CircuitReport:
    """Circuit measurements on one held-out token batch (scores are heuristic)."""

    prev_tok: np.ndarray  # (L, H)
    ind_score: np.ndarray  # (L, H)
    prev_head: tuple[int, int]  # argmax prevTok over layers 0..L-2
    ind_head: tuple[int, int]  # argmax indScore over layers after prev_head's
    ablated: list[tuple[int, int]]  # later-layer heads with indScore >= ABLATE_IND
    loss: float  # loss on repeated tokens
    ablated_loss: float
    prev_ablated_loss: float  # loss with the previous-token head ablated (a second check)
    n_queries: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ablation_increase(self) -> float:
        return self.ablated_loss - self.loss

    @property
    def passes(self) -> bool:
        return (
            self.prev_tok[self.prev_head] >= PREV_MIN
            and self.ind_score[self.ind_head] >= IND_MIN
            and self.ablation_increase >= ABLATION_MIN_NATS
        )

    def line(self) -> str:
        (lp, hp), (li, hi) = self.prev_head, self.ind_head
        return (
            f"prevTok L{lp}H{hp}={self.prev_tok[lp, hp]:.3f} "
            f"indScore L{li}H{hi}={self.ind_score[li, hi]:.3f} "
            f"rep_loss={self.loss:.3f} ablate{_heads(self.ablated)}=+{self.ablation_increase:.3f} "
            f"ablate_prev=+{self.prev_ablated_loss - self.loss:.3f} "
            f"circuit={'yes' if self.passes else 'no'}"
        )


def _heads(hs: list[tuple[int, int]]) -> str:
    return "[" + ",".join(f"L{l}H{h}" for l, h in hs) + "]"  # noqa: E741


def measure_circuit(params: dict[str, torch.Tensor], tokens: np.ndarray) -> CircuitReport:
    """prevTok, indScore, and the ablation test on ``tokens`` (B, n), in float64."""
    import torch

    from nfp_steps.torch_gpt2 import TorchParams, forward

    p64 = {k: v.detach().to(torch.float64) for k, v in params.items()}
    if isinstance(params, TorchParams):
        p64 = params.replace(p64)
    with torch.no_grad():
        out = forward(p64, tokens)
        attn = out.attn.numpy()
        prev = prev_token_scores(attn)
        ind = induction_scores(attn, tokens)
        L = prev.shape[0]
        lp, hp = np.unravel_index(np.argmax(prev[: L - 1]), prev[: L - 1].shape)
        later = ind[lp + 1 :]
        li, hi = np.unravel_index(np.argmax(later), later.shape)
        li += lp + 1
        ablated = [
            (int(a), int(b)) for a, b in np.argwhere(ind >= ABLATE_IND) if a > lp
        ]
        loss = repeated_token_loss(out.logits, tokens)
        abl_loss = (
            repeated_token_loss(forward(p64, tokens, ablate_heads=ablated).logits, tokens)
            if ablated
            else loss
        )
        prev_abl = repeated_token_loss(
            forward(p64, tokens, ablate_heads=[(int(lp), int(hp))]).logits, tokens
        )
    return CircuitReport(
        prev, ind, (int(lp), int(hp)), (int(li), int(hi)), ablated, loss, abl_loss, prev_abl,
        n_queries=int(data.induction_positions(tokens).sum()),
    )


# ---- training ---------------------------------------------------------------------------------


@dataclass
class TrainResult:
    params: TorchParams
    report: CircuitReport
    history: list[dict]
    kept_step: int  # the phase-2 step whose checkpoint was kept (0 = end of phase 1)
    phase1_report: CircuitReport


def train_data_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0])


def eval_tokens(cfg: ToyConfig) -> np.ndarray:
    """The held-out monitoring batch (a different stream from training's)."""
    rng = np.random.default_rng([cfg.seed, 1])
    return data.repeated_segment_tokens(rng, cfg.batch * cfg.eval_batches, cfg.seq_len, cfg.vocab)


def _loss(params: dict[str, torch.Tensor], tokens: torch.Tensor, freeze_mlp: bool) -> torch.Tensor:
    import torch

    from nfp_steps.torch_gpt2 import forward

    logits = forward(params, tokens, freeze_mlp=freeze_mlp).logits
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1)
    )


def _run_phase(
    params: TorchParams,
    keys: list[str],
    cfg: ToyConfig,
    steps: int,
    lr: float,
    freeze_mlp: bool,
    rng: np.random.Generator,
    on_eval: Callable[[int, float], None],
) -> None:
    import torch

    trainable = [params[k] for k in keys]
    for t in trainable:
        t.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    warm = min(cfg.warmup, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0
    )
    running = float("nan")
    for step in range(1, steps + 1):
        tok = torch.as_tensor(data.repeated_segment_tokens(rng, cfg.batch, cfg.seq_len, cfg.vocab))
        loss = _loss(params, tok, freeze_mlp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if math.isnan(running) else 0.95 * running + 0.05 * value
        if step % cfg.eval_every == 0 or step == steps:
            on_eval(step, running)
    for t in trainable:
        t.requires_grad_(False)


def train_toy(cfg: ToyConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Run both phases and return the kept parameters and their circuit report."""
    import torch

    cfg.validate()
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed)  # nothing below draws from the global generator; belt and braces
    try:
        return _train(cfg, log)
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _snapshot(params: TorchParams) -> TorchParams:
    """A detached copy (the kept checkpoint)."""
    return params.replace({k: v.detach().clone() for k, v in params.items()})


def _train(cfg: ToyConfig, log: Callable[[str], None]) -> TrainResult:
    params = init_params(cfg)
    rng = train_data_rng(cfg.seed)
    held_out = eval_tokens(cfg)
    history: list[dict] = []
    t0 = time.perf_counter()

    def evaluate(phase: str, step: int, running: float) -> CircuitReport:
        rep = measure_circuit(params, held_out)
        history.append({"phase": phase, "step": step, "train_loss": running,
                        "prev_tok": float(rep.prev_tok[rep.prev_head]),
                        "ind_score": float(rep.ind_score[rep.ind_head]),
                        "rep_loss": rep.loss, "ablation_increase": rep.ablation_increase,
                        "passes": rep.passes})
        total = cfg.steps if phase == "attn" else cfg.mlp_steps
        log(f"[{phase} {step}/{total} {time.perf_counter() - t0:.0f}s] "
            f"train_loss={running:.3f} {rep.line()}")
        return rep

    attn_keys = [k for k in params if k not in MLP_KEYS]
    log(f"phase 1: attention only (MLP outputs frozen at zero), {cfg.steps} steps")
    _run_phase(params, attn_keys, cfg, cfg.steps, cfg.lr, True, rng,
               lambda s, r: evaluate("attn", s, r))
    phase1 = measure_circuit(params, held_out)
    kept, kept_step, kept_rep = _snapshot(params), 0, phase1
    if cfg.mlp_steps:
        log(f"phase 2: all weights incl. MLPs, {cfg.mlp_steps} steps, circuit monitored")
        state = {"ok": phase1.passes}

        def monitor(step: int, running: float) -> None:
            nonlocal kept, kept_step, kept_rep
            rep = evaluate("mlp", step, running)
            if rep.passes or not kept_rep.passes:
                kept, kept_step, kept_rep = _snapshot(params), step, rep
            elif state["ok"]:
                log(f"  circuit check failed at phase-2 step {step}; "
                    f"keeping the checkpoint of step {kept_step}")
                state["ok"] = False

        _run_phase(params, list(params), cfg, cfg.mlp_steps, cfg.mlp_lr, False, rng, monitor)
    if not kept_rep.passes:
        log("WARNING: no genuine induction circuit by the criteria "
            f"(prevTok >= {PREV_MIN}, indScore >= {IND_MIN}, ablation >= {ABLATION_MIN_NATS} nats)")
    return TrainResult(kept, kept_rep, history, kept_step, phase1)


# ---- output -----------------------------------------------------------------------------------


def _training_md(cfg: ToyConfig, output: str, res: TrainResult, sha: str) -> str:
    rep, p1 = res.report, res.phase1_report
    (lp, hp), (li, hi) = rep.prev_head, rep.ind_head
    L, H = rep.prev_tok.shape

    def table(m: np.ndarray) -> str:
        head = "| layer | " + " | ".join(f"H{h}" for h in range(H)) + " |"
        sep = "|---" * (H + 1) + "|"
        rows = [f"| L{layer} | " + " | ".join(f"{m[layer, h]:.3f}" for h in range(H)) + " |"
                for layer in range(L)]
        return "\n".join([head, sep, *rows])

    verdict = "formed" if rep.passes else "NOT formed (see the criteria below)"
    return f"""# nfp-toy: the embedded induction model

A GPT-2-architecture model ({cfg.layers} layers, width {cfg.width}, {cfg.heads} heads, MLP width
{cfg.mlp_ratio * cfg.width}, vocabulary {cfg.vocab}, context {cfg.seq_len}, tied unembedding,
gelu_new, LayerNorm eps 1e-5), trained by the project's own trainer on random tokens in which
random segments reappear at random, unrelated distances (`nfp_steps.data.repeated_segment_tokens`).

## Reproduce

```
{cfg.command(output)}
```

Seed {cfg.seed}; phase 1 (attention only, MLP outputs frozen at zero): {cfg.steps} steps at lr
{cfg.lr}; phase 2 (all weights, circuit re-measured every {cfg.eval_every} steps): {cfg.mlp_steps}
steps at lr {cfg.mlp_lr}; batch {cfg.batch}; AdamW (betas 0.9/0.98, weight decay
{cfg.weight_decay}), {cfg.warmup} warm-up steps, gradient clipping 1.0; {cfg.threads} torch
thread(s), deterministic algorithms. Kept checkpoint: phase-2 step {res.kept_step}
(0 = end of phase 1). Training data: numpy `default_rng([seed, 0])`; monitoring data:
`default_rng([seed, 1])`, {cfg.batch * cfg.eval_batches} sequences.
Bitwise reproduction is expected with the same torch build on the same CPU type.

model.safetensors sha256: `{sha}`

## Circuit (heuristic scores, float64 forward, monitoring data)

Induction circuit: **{verdict}**.

- previous-token head: **L{lp}H{hp}**, prevTok = {rep.prev_tok[lp, hp]:.3f}
- induction head: **L{li}H{hi}**, indScore = {rep.ind_score[li, hi]:.3f}
- later-layer heads with indScore ≥ {ABLATE_IND} (ablated together): {_heads(rep.ablated)}
- loss on repeated tokens (next token = the induction prediction): {rep.loss:.3f} nats;
  with those heads zero-ablated: {rep.ablated_loss:.3f} nats (**+{rep.ablation_increase:.3f}**);
  with the previous-token head L{lp}H{hp} ablated instead: {rep.prev_ablated_loss:.3f} nats
  (+{rep.prev_ablated_loss - rep.loss:.3f})
- end of phase 1 (attention only): {p1.line()}

Criteria (asserted by `tests/test_shipped_model.py` on held-out data from another seed):
some early-layer head has prevTok ≥ {PREV_MIN}; some later-layer head has indScore ≥ {IND_MIN};
zero-ablating the later-layer heads with indScore ≥ {ABLATE_IND} raises the loss on the repeated
tokens by ≥ {ABLATION_MIN_NATS} nat.

prevTok[l,h] = mean over q ≥ 1 of A[q,q−1]:

{table(rep.prev_tok)}

indScore[l,h] = mean over queries q with an earlier occurrence k ≤ q−2 of tokens[q] of
Σ_k A[q,k+1]:

{table(rep.ind_score)}
"""


def write_toy_folder(res: TrainResult, cfg: ToyConfig, output: str | os.PathLike) -> Path:
    """Write config.json, model.safetensors (float32) and TRAINING.md to ``output`` atomically
    (:func:`nfp_steps.io.hf.write_hf_folder`: a temporary folder renamed when complete)."""
    from nfp_steps.io.hf import write_hf_folder
    from nfp_steps.torch_gpt2 import torch_params_to_weights

    w = torch_params_to_weights(res.params, attrs={"source": "nfp train-toy"})
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_hf_folder(w, out, dtype="float32",
                    extra_files=lambda sha: {"TRAINING.md": _training_md(cfg, str(output), res,
                                                                         sha)})
    return out

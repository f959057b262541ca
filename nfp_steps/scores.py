"""Heuristic induction scores (DESIGN §6 "Induction scoring"); none of these is a bound.

prevTok, indScore, kComp (raw and baseline-corrected), δ and Effect, plus the target direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nfp_steps.model import GPT2Weights, ModelError


class TargetError(ValueError):
    """No induction target can be derived (exit code 2, as in the original)."""


@dataclass(frozen=True)
class Target:
    correct: int
    incorrect: int
    description: str


def prev_token_scores(attn: np.ndarray) -> np.ndarray:
    """prevTok[...] = mean over q ≥ 1 of A[q, q−1] for attention arrays (..., n, n)."""
    n = attn.shape[-1]
    if n < 2:
        return np.zeros(attn.shape[:-2])
    idx = np.arange(1, n)
    return attn[..., idx, idx - 1].mean(axis=-1)


def successor_mask(tokens: np.ndarray) -> np.ndarray:
    """M[q, j] = 1 iff j ≥ 1, j ≤ q−1 and tokens[j−1] == tokens[q] (j succeeds an occurrence)."""
    t = np.asarray(tokens)
    n = len(t)
    m = np.zeros((n, n))
    if n >= 3:
        same = t[None, :-1] == t[:, None]  # same[q, k] = tokens[k] == tokens[q], k = 0..n−2
        k = np.arange(n - 1)
        ok = same & (k[None, :] <= np.arange(n)[:, None] - 2)
        m[:, 1:] = ok
    return m


def induction_scores(attn: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """indScore = mean over queries with an earlier occurrence (k ≤ q−2) of the attention on
    successors of those occurrences; NaN when the prompt has no such query."""
    m = successor_mask(tokens)
    rows = m.sum(axis=1) > 0
    if not rows.any():
        return np.full(attn.shape[:-2], np.nan)
    r = (attn * m).sum(axis=-1)[..., rows]
    return r.mean(axis=-1)


def kcomp_scores(w: GPT2Weights, fold_ln: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(raw, corrected) K-composition for every (l1,h1,l2,h2) with l1 < l2 (else NaN).

    raw = ‖W_V¹W_O¹ W_K² W_Q²ᵀ‖_F / (‖W_Q²W_K²ᵀ‖_F ‖W_V¹W_O¹‖_F), corrected = raw − 1/√d,
    computed through the dh×dh Gram cores. ``fold_ln=False`` uses the raw W_Q/W_K (the
    original's definition); ``fold_ln=True`` folds the receiving layer's LN1 γ into them
    (W → diag(γ) W: the head reads γ ⊙ x̂, so this is the map from the normalised residual),
    which makes the score invariant under rescaling γ against W_Q/W_K.
    """
    L, H, d = w.n_layers, w.n_heads, w.d_model
    wq, wk = w.W_Q, w.W_K
    if fold_ln:
        wq = w.ln1_g[:, None, :, None] * wq
        wk = w.ln1_g[:, None, :, None] * wk
    gq = np.einsum("lhdi,lhdj->lhij", wq, wq)
    gk = np.einsum("lhdi,lhdj->lhij", wk, wk)
    gv = np.einsum("lhdi,lhdj->lhij", w.W_V, w.W_V)
    go = np.einsum("lhid,lhjd->lhij", w.W_O, w.W_O)
    qk_f = np.sqrt(np.maximum(np.einsum("lhij,lhji->lh", gq, gk), 0.0))
    vo_f = np.sqrt(np.maximum(np.einsum("lhij,lhji->lh", gv, go), 0.0))
    raw = np.full((L, H, L, H), np.nan)
    for l1 in range(L):
        for l2 in range(l1 + 1, L):
            dh = w.d_head
            # M[a,b] = W_O¹[a] W_K²[b] for all head pairs in one GEMM: (H·dh, d)(d, H·dh)
            full = w.W_O[l1].reshape(H * dh, d) @ wk[l2].transpose(1, 0, 2).reshape(d, H * dh)
            m = full.reshape(H, dh, H, dh).transpose(0, 2, 1, 3)  # (H1,H2,dh,dh)
            # ‖W_V¹ M W_Q²ᵀ‖_F² = tr(Mᵀ G_V M G_Q) = Σ M ∘ (G_V M G_Q)
            num2 = (m * (gv[l1][:, None] @ m @ gq[l2][None, :])).sum(axis=(2, 3))
            den = vo_f[l1][:, None] * qk_f[l2][None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.sqrt(np.maximum(num2, 0.0)) / den
            raw[l1, :, l2, :] = np.where(den < 1e-10, 0.0, r)
    return raw, raw - 1.0 / np.sqrt(d)


def target_from_history(tokens: np.ndarray, vocab: int) -> Target:
    """The original's rule: correct = token after the most recent earlier occurrence of the last
    token; incorrect = the last token itself (or a neighbour id if that equals correct)."""
    t = [int(v) for v in tokens]
    if not t:
        raise TargetError("no valid induction target: the prompt is empty")
    last = len(t) - 1
    cur = t[last]
    prev = [k for k in range(last) if t[k] == cur]
    if not prev:
        raise TargetError(
            "No valid induction target could be derived from TOKENS (no prior repetition of "
            "last token). Give the target: --correct/--incorrect (nfp) or "
            "induction.correct/incorrect (config.yaml)."
        )
    k = prev[-1]
    nxt = t[k + 1]
    if vocab < 2 or nxt >= vocab:
        raise TargetError(f"no valid induction target: token {nxt} is outside the vocabulary")
    if cur < vocab and cur != nxt:
        neg = cur
    else:
        neg = (nxt + 1) % vocab
        if neg == nxt:
            neg = (nxt + 2) % vocab
    if neg == nxt:
        raise TargetError("no valid induction target: no distinct incorrect token")
    return Target(nxt, neg, f"induction_history(curr={cur}, prev={k}, next={nxt}, neg={neg})")


def resolve_target(
    tokens: np.ndarray | None, vocab: int, correct: int | None, incorrect: int | None
) -> tuple[Target, list[str]]:
    """Target from --correct/--incorrect, else from the prompt; returns (target, warnings)."""
    if (correct is None) != (incorrect is None):
        raise ModelError("--correct and --incorrect must be given together")
    if correct is not None:
        for name, v in (("correct", correct), ("incorrect", incorrect)):
            if not 0 <= v < vocab:
                raise ModelError(f"--{name} {v} is outside the vocabulary [0, {vocab})")
        return Target(correct, incorrect, f"logit_diff({correct}-{incorrect})"), []
    if tokens is None:
        warn = [
            "Warning: No TOKENS section found; using default target logit_diff(0-1).",
            "Hint: export with TOKENS or pass --correct/--incorrect.",
        ]
        return Target(0, 1, "logit_diff(0-1)"), warn
    return target_from_history(tokens, vocab), []


def direct_effects(
    w: GPT2Weights, z1: np.ndarray, attn: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(δ, Effect) per head: δ = (head output at the last position)·u, with the head output
    A(Z W_V + b_V)W_O as GPT-2 computes it; Effect = δ / (‖Z_l‖_F ‖u‖₂)."""
    L, H = w.n_layers, w.n_heads
    delta = np.zeros((L, H))
    effect = np.zeros((L, H))
    un = float(np.linalg.norm(u))
    for layer in range(L):
        z = z1[layer]
        zn = float(np.linalg.norm(z))
        for h in range(H):
            v = z @ w.W_V[layer, h] + w.b_V[layer, h]
            out_last = attn[layer, h, -1] @ v @ w.W_O[layer, h]
            delta[layer, h] = float(out_last @ u)
            denom = zn * un
            effect[layer, h] = delta[layer, h] / denom if denom > 1e-10 else 0.0
    return delta, effect


SCORE_NAMES = ("prevTok", "indScore", "delta", "effect")


def prompt_scores(
    w: GPT2Weights, tokens: np.ndarray | None, attn: np.ndarray, z1: np.ndarray,
    correct: int | None, incorrect: int | None,
) -> tuple[dict[str, np.ndarray], Target, list[str]]:
    """prevTok, indScore, δ, Effect (each (L, H)) on one prompt, its target and warnings.

    Without TOKENS indScore is 1 for every head (the original: no filter applies).
    """
    target, warnings = resolve_target(tokens, w.vocab_size, correct, incorrect)
    u = w.W_U[:, target.correct] - w.W_U[:, target.incorrect]
    delta, effect = direct_effects(w, z1, attn, u)
    ind = (induction_scores(attn, tokens) if tokens is not None
           else np.ones((w.n_layers, w.n_heads)))
    return ({"prevTok": prev_token_scores(attn), "indScore": ind, "delta": delta,
             "effect": effect}, target, warnings)


def batch_summary(per_prompt: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack per-prompt scores: ``name`` → mean, ``name_sd`` → standard deviation (ddof 1; 0
    for one prompt), ``name_batch`` → (B, ...) values. NaN prompts (no induction query) are
    left out of the mean and sd."""
    out = {}
    for name in SCORE_NAMES:
        vals = np.stack([p[name] for p in per_prompt])
        ok = np.isfinite(vals)
        cnt = ok.sum(axis=0)
        filled = np.where(ok, vals, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cnt > 0, filled.sum(axis=0) / np.maximum(cnt, 1), np.nan)
            dev = np.where(ok, vals - mean, 0.0)
            var = (dev * dev).sum(axis=0) / np.maximum(cnt - 1, 1)
        out[name] = mean
        out[f"{name}_sd"] = np.where(cnt > 1, np.sqrt(var), np.where(cnt == 1, 0.0, np.nan))
        out[f"{name}_batch"] = vals
    return out

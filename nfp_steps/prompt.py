"""The analysed prompt: seeded non-periodic repeated segments (default), periodic, or explicit.

The default ends inside a repeated segment whose last token occurs exactly once before, with a
different token after it: the prompt's own induction history then gives an unambiguous target
(the token that followed that occurrence; the original's rule, see :mod:`nfp_steps.scores`).
"""

from __future__ import annotations

import numpy as np

from nfp_steps.data import induction_positions, periodic_tokens, repeated_segment_tokens
from nfp_steps.model import GPT2Weights, ModelError


def make_prompt(cfg: dict, w: GPT2Weights) -> np.ndarray | None:
    """Tokens (int64, (n,)) for the config's ``prompt`` slice, or the model's baked TOKENS.

    ``.nfpt`` models carry their prompt as EMBEDDINGS (and maybe TOKENS); they are used as is.
    """
    if w.embeddings is not None:
        return None if w.tokens is None else np.asarray(w.tokens, dtype=np.int64)
    p = cfg["prompt"]
    kind, n, vocab = p["kind"], int(p["seq_len"]), w.vocab_size
    rng = np.random.default_rng(int(p["seed"]))
    if kind == "tokens":
        toks = np.asarray(p["tokens"], dtype=np.int64)
        if toks.ndim != 1 or toks.size == 0:
            raise ModelError("prompt.tokens must be a non-empty list of token ids")
        if toks.min() < 0 or toks.max() >= vocab:
            raise ModelError(f"prompt.tokens holds ids outside the vocabulary [0, {vocab})")
        if w.n_ctx is not None and toks.size > w.n_ctx:
            raise ModelError(f"prompt.tokens has {toks.size} tokens, context is {w.n_ctx}")
        return toks
    if w.n_ctx is not None and n > w.n_ctx:
        raise ModelError(f"prompt.seq_len {n} exceeds the model's context length {w.n_ctx}")
    if kind == "periodic":
        return periodic_tokens(rng, 1, n, vocab, period=int(p["period"]))[0]
    if kind == "repeated_segments":
        return repeated_segments_prompt(rng, n, vocab)
    raise ModelError(f"prompt.kind {kind!r} is not one of repeated_segments, periodic, tokens")


def make_prompt_batch(cfg: dict, w: GPT2Weights) -> np.ndarray | None:
    """The scoring batch (B, n): prompt i drawn as :func:`make_prompt` with seed ``seed + i``.

    Row 0 is the analysed prompt (the one the bound stages use). ``prompt.batch`` applies to the
    random kinds (repeated_segments, periodic); an explicit token list and a model's baked
    prompt give a batch of one. None for a baked prompt without TOKENS.
    """
    first = make_prompt(cfg, w)
    if first is None:
        return None
    p = cfg["prompt"]
    if w.embeddings is not None or p["kind"] == "tokens":
        return first[None, :]
    rows = [first]
    for i in range(1, int(p.get("batch", 1))):
        rows.append(make_prompt({**cfg, "prompt": {**p, "seed": int(p["seed"]) + i}}, w))
    return np.stack(rows)


def _unambiguous_end(toks: np.ndarray) -> bool:
    """The last token occurs exactly once earlier, at k ≤ n − 3, followed by another token."""
    last = toks[-1]
    earlier = np.flatnonzero(toks[:-1] == last)
    return earlier.size == 1 and earlier[0] <= toks.size - 3 and toks[earlier[0] + 1] != last


def repeated_segments_prompt(rng: np.random.Generator, n: int, vocab: int) -> np.ndarray:
    """Random tokens with repeated segments (:func:`repeated_segment_tokens`), the last
    m = min(8, n // 3) tokens a copy of an earlier segment, redrawn (deterministically, from
    ``rng``) until the end is unambiguous (:func:`_unambiguous_end`)."""
    m = int(min(8, n // 3))
    if m < 2:
        raise ModelError(f"a prompt of {n} tokens is too short to end in a repeated segment "
                         "(need >= 6)")
    for _ in range(1000):
        # sequences shorter than two minimal segments get only the final copy
        toks = repeated_segment_tokens(rng, 1, n, vocab, copies=None if n >= 8 else 0)[0]
        s = int(rng.integers(0, n - 2 * m + 1))
        toks[n - m:] = toks[s:s + m]
        if _unambiguous_end(toks) and induction_positions(toks)[-1]:
            return toks
    raise ModelError(
        f"could not draw a prompt of {n} tokens whose last token has a single earlier occurrence "
        f"(vocabulary {vocab} too small?); use prompt.kind: tokens"
    )

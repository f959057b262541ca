"""Synthetic token sequences for induction: training data of the toy model and default prompts.

Numpy only and driven by a caller-supplied ``np.random.Generator``, so the same seed gives the
same tokens everywhere (trainer, prompt stage, tests).

Two forms:

* :func:`repeated_segment_tokens` (default): uniform random tokens in which random segments are
  copied to random later positions, at unrelated distances. Only a genuine induction mechanism
  (find the earlier occurrence of the current token, copy its successor) predicts the copies.
* :func:`periodic_tokens`: the original's "pattern repeated" prompt, one random pattern tiled.
  Positional heads (attend to q − period) solve it without induction, so it is an option for
  prompts, never what the circuit is judged on.

:func:`induction_positions` and :func:`induction_targets` read the structure back from the
tokens alone, so they also work for explicit token lists.
"""

from __future__ import annotations

import numpy as np


def _check_dims(batch: int, seq_len: int, vocab: int) -> None:
    for name, value in (("batch", batch), ("seq_len", seq_len), ("vocab", vocab)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def default_copies(seq_len: int) -> int:
    """Number of segment copies per sequence when none is given (about one per 20 tokens)."""
    return max(1, seq_len // 20)


def repeated_segment_tokens(
    rng: np.random.Generator,
    batch: int,
    seq_len: int,
    vocab: int,
    *,
    copies: int | None = None,
    min_len: int = 4,
    max_len: int = 16,
) -> np.ndarray:
    """Random tokens with ``copies`` random segments copied to random later positions.

    Each copy picks a length m uniform in [min_len, min(max_len, seq_len // 2)], a source start s
    uniform in [0, seq_len − 2m] and a destination start t uniform in [s + m, seq_len − m]
    (source and destination never overlap, the distance t − s is random). Copies are applied one
    after another, so a later copy may overwrite part of an earlier one; use
    :func:`induction_targets` to read the final structure. Returns int64 (batch, seq_len).
    """
    _check_dims(batch, seq_len, vocab)
    if copies is None:
        copies = default_copies(seq_len)
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    if min_len < 2:
        raise ValueError(f"min_len must be >= 2 (one token has no successor), got {min_len}")
    hi = min(max_len, seq_len // 2)
    if copies > 0 and hi < min_len:
        raise ValueError(
            f"seq_len {seq_len} is too short for segments of length >= {min_len} "
            f"(need seq_len >= {2 * min_len}); max_len {max_len}"
        )
    tokens = rng.integers(0, vocab, size=(batch, seq_len), dtype=np.int64)
    for b in range(batch):
        row = tokens[b]
        for _ in range(copies):
            m = int(rng.integers(min_len, hi + 1))
            s = int(rng.integers(0, seq_len - 2 * m + 1))
            t = int(rng.integers(s + m, seq_len - m + 1))
            row[t : t + m] = row[s : s + m]
    return tokens


def periodic_tokens(
    rng: np.random.Generator,
    batch: int,
    seq_len: int,
    vocab: int,
    *,
    period: int | None = None,
    min_period: int = 4,
    max_period: int | None = None,
) -> np.ndarray:
    """The original's "pattern repeated" form: a random pattern tiled and cut to ``seq_len``.

    ``period`` fixes the pattern length; otherwise each row draws one uniformly from
    [min_period, max_period] (default max: seq_len // 2, so the pattern appears at least twice).
    Pattern tokens are distinct when period ≤ vocab, so every repeat is unambiguous.
    Returns int64 (batch, seq_len).
    """
    _check_dims(batch, seq_len, vocab)
    if period is not None:
        if period <= 0 or period > seq_len:
            raise ValueError(f"period must be in [1, seq_len={seq_len}], got {period}")
        lo = hi = period
    else:
        lo = min_period
        hi = seq_len // 2 if max_period is None else max_period
        if lo < 1 or hi < lo or hi > seq_len:
            raise ValueError(
                f"need 1 <= min_period <= max_period <= seq_len, got min_period={lo}, "
                f"max_period={hi}, seq_len={seq_len}"
            )
    out = np.empty((batch, seq_len), dtype=np.int64)
    for b in range(batch):
        p = int(rng.integers(lo, hi + 1))
        if p <= vocab:
            pattern = rng.choice(vocab, size=p, replace=False).astype(np.int64)
        else:
            pattern = rng.integers(0, vocab, size=p, dtype=np.int64)
        out[b] = np.resize(pattern, seq_len)
    return out


def _as_batch(tokens: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(tokens)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"tokens must be integers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValueError(f"tokens must have shape (seq_len,) or (batch, seq_len), got {arr.shape}")
    return arr, False


def last_earlier_occurrence(tokens: np.ndarray) -> np.ndarray:
    """Per position q, the largest k ≤ q − 2 with tokens[k] == tokens[q], or −1 if none.

    k ≤ q − 2 means the successor k + 1 lies strictly before q, so it is known at q and is not
    the previous token itself. Same shape as ``tokens``.
    """
    arr, single = _as_batch(tokens)
    batch, n = arr.shape
    out = np.full((batch, n), -1, dtype=np.int64)
    for b in range(batch):
        row = arr[b]
        last: dict[int, int] = {}  # token -> last position seen, lagging two positions behind q
        for q in range(n):
            if q >= 2:
                last[int(row[q - 2])] = q - 2
            out[b, q] = last.get(int(row[q]), -1)
    return out[0] if single else out


def induction_positions(tokens: np.ndarray) -> np.ndarray:
    """Bool mask: position q is an induction position (tokens[q] occurred at some k ≤ q − 2).

    These are the queries over which the induction score averages; the successor tokens[k+1]
    of each such occurrence is already in context at q.
    """
    return last_earlier_occurrence(tokens) >= 0


def induction_targets(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where induction predicts the next token, and what it predicts.

    Returns ``(mask, predicted)``: ``predicted[q]`` = tokens[k + 1] for the most recent earlier
    occurrence k ≤ q − 2 of tokens[q] (−1 if none); ``mask[q]`` is True when q + 1 is in the
    sequence and tokens[q + 1] == predicted[q], i.e. the next token is a correct induction
    prediction (the "repeated tokens" a working circuit gets right).
    """
    arr, single = _as_batch(tokens)
    k = last_earlier_occurrence(arr)
    predicted = np.where(k >= 0, np.take_along_axis(arr, np.maximum(k + 1, 0), axis=1), -1)
    mask = np.zeros(arr.shape, dtype=bool)
    mask[:, :-1] = (k[:, :-1] >= 0) & (arr[:, 1:] == predicted[:, :-1])
    predicted = predicted.astype(np.int64)
    if single:
        return mask[0], predicted[0]
    return mask, predicted

"""Synthetic sequences: seeded, non-periodic copies, and the induction masks."""

from __future__ import annotations

import numpy as np
import pytest

from nfp_steps import data


def test_repeated_segments_seeded_shape_dtype_range():
    a = data.repeated_segment_tokens(np.random.default_rng(7), 5, 40, 30)
    b = data.repeated_segment_tokens(np.random.default_rng(7), 5, 40, 30)
    c = data.repeated_segment_tokens(np.random.default_rng(8), 5, 40, 30)
    assert a.shape == (5, 40) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < 30


def test_repeated_segments_are_copies_at_varied_distances():
    rng = np.random.default_rng(0)
    toks = data.repeated_segment_tokens(rng, 200, 64, 1000, copies=1)
    # with a huge vocab, accidental repeats are rare: a copy of length >= 4 gives >= 3
    # predictable next tokens (an accidental repeat next to the copy can break one)
    mask, _ = data.induction_targets(toks)
    assert (mask.sum(axis=1) >= 3).mean() > 0.95
    assert (mask.sum(axis=1) >= 2).all()
    distances = set()
    for row, m in zip(toks, mask, strict=True):
        k = data.last_earlier_occurrence(row)
        q = int(np.argmax(m))
        distances.add(q - int(k[q]))
    assert len(distances) > 20  # distances unrelated: not one period


def test_not_periodic_in_general():
    toks = data.repeated_segment_tokens(np.random.default_rng(1), 50, 64, 64)
    # a period p would make tokens[q] == tokens[q - p] for all q >= p
    for row in toks:
        for p in range(1, 33):
            assert not np.all(row[p:] == row[:-p])


def test_periodic_tokens():
    toks = data.periodic_tokens(np.random.default_rng(3), 4, 30, 50, period=7)
    for row in toks:
        np.testing.assert_array_equal(row[7:], row[:-7])
        assert len(set(row[:7].tolist())) == 7
    rand = data.periodic_tokens(np.random.default_rng(3), 20, 30, 50)
    periods = set()
    for row in rand:
        p = next(p for p in range(1, 31) if np.all(row[p:] == row[:-p]))
        periods.add(p)
        assert 4 <= p <= 15
    assert len(periods) > 3


def test_induction_positions_and_targets_by_hand():
    toks = np.array([5, 6, 7, 5, 6, 9, 5, 5])
    k = data.last_earlier_occurrence(toks)
    np.testing.assert_array_equal(k, [-1, -1, -1, 0, 1, -1, 3, 3])
    # q=7: tokens[6] = 5 is at q-1, excluded (k <= q-2), so the last earlier occurrence is 3
    np.testing.assert_array_equal(
        data.induction_positions(toks), [0, 0, 0, 1, 1, 0, 1, 1]
    )
    mask, pred = data.induction_targets(toks)
    np.testing.assert_array_equal(pred, [-1, -1, -1, 6, 7, -1, 6, 6])
    # q=3 predicts 6 (correct), q=4 predicts 7 (next is 9: wrong), q=6 predicts 6 (next is 5)
    np.testing.assert_array_equal(mask, [0, 0, 0, 1, 0, 0, 0, 0])
    batched, _ = data.induction_targets(toks[None, :])
    np.testing.assert_array_equal(batched[0], mask)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch=0, seq_len=10, vocab=5), "batch"),
        (dict(batch=1, seq_len=6, vocab=5), "too short"),
        (dict(batch=1, seq_len=10, vocab=0), "vocab"),
        (dict(batch=1, seq_len=10, vocab=5, min_len=1), "min_len"),
        (dict(batch=1, seq_len=10, vocab=5, copies=-1), "copies"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.repeated_segment_tokens(np.random.default_rng(0), **kwargs)


def test_bad_periodic_and_token_arguments():
    with pytest.raises(ValueError, match="period"):
        data.periodic_tokens(np.random.default_rng(0), 1, 10, 5, period=11)
    with pytest.raises(ValueError, match="integers"):
        data.induction_positions(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        data.induction_positions(np.zeros((1, 2, 3), dtype=int))

"""The analysed prompt: default non-periodic with an unambiguous induction target."""

from __future__ import annotations

import numpy as np
import pytest

from nfp_steps.config import load_config
from nfp_steps.data import induction_targets
from nfp_steps.model import ModelError
from nfp_steps.prompt import make_prompt
from nfp_steps.scores import target_from_history
from tests.io_helpers import random_weights


def _cfg(**prompt):
    return load_config({"models": {"m": "x"}, "prompt": prompt})


@pytest.mark.parametrize("seed", range(20))
def test_default_prompt_has_a_single_earlier_occurrence_of_its_last_token(seed):
    w = random_weights(0, L=1, H=1, d=2, dh=2, dff=2, V=128, n=None, n_ctx=64)
    toks = make_prompt(_cfg(seed=seed), w)
    assert toks.shape == (64,) and toks.dtype == np.int64
    assert ((0 <= toks) & (toks < 128)).all()
    earlier = np.flatnonzero(toks[:-1] == toks[-1])
    assert earlier.size == 1 and earlier[0] <= 61
    target = target_from_history(toks, 128)
    assert target.correct == toks[earlier[0] + 1] != target.incorrect == toks[-1]
    # non-periodic: no shift p < n/2 maps the sequence onto itself
    assert all((toks[p:] != toks[:-p]).any() for p in range(1, 32))
    # and mostly random: most next tokens are not induction predictions
    assert induction_targets(toks)[0].mean() < 0.7
    assert np.array_equal(toks, make_prompt(_cfg(seed=seed), w))  # seeded


def test_periodic_and_explicit_prompts():
    w = random_weights(0, L=1, H=1, d=2, dh=2, dff=2, V=50, n=None, n_ctx=40)
    toks = make_prompt(_cfg(kind="periodic", period=7, seq_len=30), w)
    assert np.array_equal(toks[7:], toks[:-7])
    assert make_prompt(_cfg(kind="tokens", tokens=[1, 2, 3]), w).tolist() == [1, 2, 3]
    with pytest.raises(ModelError, match="outside the vocabulary"):
        make_prompt(_cfg(kind="tokens", tokens=[1, 50]), w)
    with pytest.raises(ModelError, match="exceeds the model's context length 40"):
        make_prompt(_cfg(seq_len=41), w)


def test_tiny_vocabulary_is_a_clear_error():
    w = random_weights(0, L=1, H=1, d=2, dh=2, dff=2, V=2, n=None, n_ctx=64)
    with pytest.raises(ModelError, match="single earlier occurrence"):
        make_prompt(_cfg(), w)


@pytest.mark.parametrize("n", [6, 7, 8, 9, 200])
def test_short_and_long_prompts_end_unambiguously(n):
    from nfp_steps.prompt import repeated_segments_prompt

    toks = repeated_segments_prompt(np.random.default_rng(n), n, 1000)
    assert toks.shape == (n,)
    assert target_from_history(toks, 1000).correct != toks[-1]
    assert np.flatnonzero(toks[:-1] == toks[-1]).size == 1


def test_too_short_prompt_is_a_clear_error():
    from nfp_steps.prompt import repeated_segments_prompt

    with pytest.raises(ModelError, match="a prompt of 5 tokens is too short"):
        repeated_segments_prompt(np.random.default_rng(0), 5, 100)

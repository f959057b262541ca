"""Heuristic scores and ranking on hand-made cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_torch_gpt2 import hf_model, hf_to_weights

from nfp_steps import scores as S
from nfp_steps.ranking import induction_report, rank_pairs, to_tsv


def test_prev_token_score_of_a_perfect_previous_token_head():
    n = 6
    a = np.zeros((n, n))
    a[0, 0] = 1.0
    for q in range(1, n):
        a[q, q - 1] = 1.0
    assert S.prev_token_scores(a) == pytest.approx(1.0)
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    assert S.prev_token_scores(uniform) == pytest.approx(np.mean(1 / np.arange(2, n + 1)))


def test_induction_score_of_a_perfect_induction_head():
    toks = np.array([5, 1, 2, 3, 1, 2, 3, 9])
    n = len(toks)
    a = np.zeros((n, n))
    for q in range(n):
        a[q, q] = 1.0
    # queries with an earlier occurrence at k <= q-2: q=4 (k=1), 5 (k=2), 6 (k=3)
    for q, k in ((4, 1), (5, 2), (6, 3)):
        a[q] = 0.0
        a[q, k + 1] = 1.0
    assert S.induction_scores(a, toks) == pytest.approx(1.0)
    assert S.induction_scores(np.eye(n), toks) == pytest.approx(0.0)
    assert math.isnan(float(S.induction_scores(np.eye(4), np.array([1, 2, 3, 4]))))


def test_kcomp_matches_dense_definition():
    w = hf_to_weights(hf_model(21, 3, 2, 8, 11, 6, "gelu_new"))
    raw, corr = S.kcomp_scores(w)
    for l1, h1, l2, h2 in ((0, 0, 1, 1), (0, 1, 2, 0), (1, 1, 2, 1)):
        vo = w.W_V[l1, h1] @ w.W_O[l1, h1]
        qk = w.W_Q[l2, h2] @ w.W_K[l2, h2].T
        want = np.linalg.norm(vo @ qk.T) / (np.linalg.norm(qk) * np.linalg.norm(vo))
        assert raw[l1, h1, l2, h2] == pytest.approx(want, rel=1e-12)
        assert corr[l1, h1, l2, h2] == pytest.approx(want - 1 / math.sqrt(8), rel=1e-12)
    assert np.isnan(raw[1, 0, 0, 0]) and np.isnan(raw[1, 0, 1, 1])


def test_target_from_history_follows_the_original_rule():
    t = S.target_from_history(np.array([3, 4, 7, 3, 4, 8, 3]), vocab=10)
    assert (t.correct, t.incorrect) == (4, 3)  # most recent earlier 3 is at index 3 -> next 4
    t = S.target_from_history(np.array([2, 2, 2]), vocab=10)
    assert (t.correct, t.incorrect) == (2, 3)  # next == curr: neighbour id
    with pytest.raises(S.TargetError, match="no prior repetition"):
        S.target_from_history(np.array([1, 2, 3]), vocab=10)


def test_resolve_target_flags_and_fallback():
    t, warn = S.resolve_target(None, 10, None, None)
    assert (t.correct, t.incorrect) == (0, 1) and warn
    t, warn = S.resolve_target(np.array([1, 2]), 10, 7, 8)
    assert t.description == "logit_diff(7-8)" and not warn
    with pytest.raises(ValueError, match="together"):
        S.resolve_target(None, 10, 1, None)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        S.resolve_target(None, 10, 1, 10)


def test_ranking_order_filters_and_ties():
    L, H = 3, 2
    prev = np.array([[0.9, 0.05], [0.5, 0.5], [0.0, 0.0]])
    ind = np.array([[0.0, 0.0], [0.8, 0.005], [0.6, 0.6]])
    kc = np.full((L, H, L, H), 0.2)
    eff = np.array([[0.0, 0.0], [0.3, 0.3], [0.1, -0.1]])
    eps = np.full((L, H), 0.5)
    sc = {"prevTok": prev, "indScore": ind, "kComp": kc, "kCompRaw": kc, "delta": eff,
          "effect": eff, "x_frob": np.ones(L), "z_frob": np.ones(L)}
    rows = rank_pairs(sc, eps, min_prev_tok=0.1, min_ind_score=0.01, threshold=0.0)
    got = [(r["l1"], r["h1"], r["l2"], r["h2"]) for r in rows]
    # h1=(0,1) fails prevTok, (1,1) as head 2 fails indScore, (2,1) fails Effect > 0
    assert got == [(0, 0, 1, 0), (0, 0, 2, 0), (1, 0, 2, 0), (1, 1, 2, 0)]
    assert rows[0]["mechScore"] == pytest.approx(0.2 * 0.8 * 0.9)
    assert rows[0]["pairError_ub"] >= 1.5 * 1.5 - 1
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    text = induction_report(rows, "t", 0.0, top=2, verbose=False)
    assert "Top Induction Head Pairs by mechScore (top 2 of 4)" in text
    assert "L0H0 -> L1H0 | Mech: 0.144000 | Effect: 0.300000" in text
    assert to_tsv(rows).count("\n") == 5


def test_batch_summary_mean_sd_and_nan_prompts():
    a = {k: np.array([[1.0, 2.0]]) for k in S.SCORE_NAMES}
    b = {k: np.array([[3.0, np.nan]]) for k in S.SCORE_NAMES}
    c = {k: np.array([[5.0, 4.0]]) for k in S.SCORE_NAMES}
    out = S.batch_summary([a, b, c])
    assert out["prevTok"][0, 0] == pytest.approx(3.0)
    assert out["prevTok_sd"][0, 0] == pytest.approx(np.std([1, 3, 5], ddof=1))
    # a prompt without a value (NaN: no induction query) is left out, not counted as 0
    assert out["indScore"][0, 1] == pytest.approx(3.0)
    assert out["indScore_sd"][0, 1] == pytest.approx(np.std([2, 4], ddof=1))
    assert out["delta_batch"].shape == (3, 1, 2)
    one = S.batch_summary([a])
    assert one["effect_sd"][0, 0] == 0.0 and one["effect"][0, 0] == 1.0


def test_kcomp_ln_fold_is_invariant_where_the_network_is():
    """Rescale layer 1's LN1 γ, β per coordinate by s and its W_Q, W_K, W_V rows by 1/s: the
    network is unchanged; the folded kComp is too, the original's (raw W_Q/W_K) is not."""
    from io_helpers import random_weights

    from nfp_steps.forward import run_forward

    w = random_weights(3, L=2, H=2, d=6, dh=3, V=9, n_ctx=8)
    s = np.array([0.2, 5.0, 1.0, 3.0, 0.5, 2.0])
    w2 = copy_weights(w)
    w2.ln1_g[1] *= s
    w2.ln1_b[1] *= s
    for name in ("W_Q", "W_K", "W_V"):
        getattr(w2, name)[1] /= s[None, :, None]
    toks = np.array([1, 2, 3, 1, 2, 4])
    assert np.allclose(run_forward(w, toks).logits, run_forward(w2, toks).logits, atol=1e-9)
    raw1, fold1 = S.kcomp_scores(w, fold_ln=True)
    raw2, fold2 = S.kcomp_scores(w2, fold_ln=True)
    assert np.allclose(raw1[0, :, 1, :], raw2[0, :, 1, :], rtol=1e-10)
    assert np.allclose(fold1[0, :, 1, :], fold2[0, :, 1, :], rtol=1e-10)
    orig1, _ = S.kcomp_scores(w)
    orig2, _ = S.kcomp_scores(w2)
    assert not np.allclose(orig1[0, :, 1, :], orig2[0, :, 1, :], rtol=1e-3)
    # with γ = 1 everywhere the two variants agree
    w.ln1_g[:] = 1.0
    assert np.array_equal(S.kcomp_scores(w)[0], S.kcomp_scores(w, fold_ln=True)[0],
                          equal_nan=True)


def copy_weights(w):
    import copy

    return copy.deepcopy(w)


def test_scores_stage_averages_the_prompt_batch():
    """prompt.batch = 3: the stored score is the mean of the three prompts' scores, and prompt
    i is exactly the single prompt drawn with seed + i."""
    from pathlib import Path

    from nfp_steps.config import load_config
    from nfp_steps.pipeline import run_in_memory

    model = str(Path(__file__).resolve().parents[1] / "models" / "nfp-toy")

    def scores(seed: int, batch: int):
        cfg = load_config({"models": {"m": model},
                           "prompt": {"seq_len": 24, "seed": seed, "batch": batch}})
        return run_in_memory(cfg, "m", until="scores")["scores"].dataset

    three = scores(7, 3)
    assert three.attrs["n_prompts"] == 3
    for name in ("prevTok", "indScore", "delta", "effect"):
        per = three[f"{name}_batch"].values
        assert np.allclose(three[name].values, per.mean(axis=0), rtol=1e-12)
        assert np.allclose(three[f"{name}_sd"].values, per.std(axis=0, ddof=1), rtol=1e-9)
        for i in (0, 2):
            single = scores(7 + i, 1)
            assert np.array_equal(per[i], single[name].values)
    assert three["prevTok_sd"].values.max() > 0  # the prompts differ
    # the analysed prompt (and so every bound) is prompt 0 whatever the batch size
    assert three.attrs["target_description"] == scores(7, 1).attrs["target_description"]


def test_verify_runtime_checks_follow_the_original():
    from nfp_steps.verify import choose_controls, runtime_checks

    norms = {0: np.array([1.0, 1.02, 3.0]), 1: np.array([2.0, 2.0, 9.0])}
    heads = [(0, 0), (1, 2)]
    ctrl = choose_controls(norms, heads)
    assert ctrl == [(0, 1), (1, 0)]  # closest norm; tie 2.0/2.0 → lowest index
    comp, indep, energy, text = runtime_checks(1.0, heads, ctrl, norms)
    assert comp and indep and not energy  # |9 − 2| ≥ 5 % of 9
    assert text == "no (Axiom3(energy equivalence) failed: no sufficiently matched control.)"
    comp, indep, energy, text = runtime_checks(1e-4, [(0, 0), (1, 0)],
                                               choose_controls(norms, [(0, 0), (1, 0)]), norms)
    assert not comp and indep and energy
    assert text.startswith("no (Axiom1(baseline competence) failed: Δ_base=0.000100")
    one = {0: np.array([1.0])}
    assert choose_controls(one, [(0, 0)]) == [None]
    assert "No control head found in layer 0 for L0H0" in runtime_checks(1.0, [(0, 0)], [None],
                                                                           one)[3]

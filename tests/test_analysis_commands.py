"""The analysis commands on the shipped model: analyze, --verify, targets, --json / -o.

The known circuit is read from the model's training record (models/nfp-toy/TRAINING.md), not
typed in here. A copy of the model whose induction head's W_Q is a random matrix is the
negative control: the pair must drop out of the top ranks and its ablation impact collapse.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nfp_steps.cli import main
from nfp_steps.ranking import fmt

MODEL = Path(__file__).resolve().parents[1] / "models" / "nfp-toy"
PAIR_KEYS = ("l1", "h1", "l2", "h2")


@pytest.fixture(scope="module", autouse=True)
def shared_pipeline():
    """Invocations with the same config share one in-memory pipeline run (a run up to verify
    also serves one up to ranking). The commands' own code runs unchanged on every call; this
    only skips recomputing identical stage results, to keep the module fast."""
    from nfp_steps.commands import analyze, common, induction
    from nfp_steps.config import digest

    real = common.run_pipeline
    cache: dict[tuple[str, str], dict] = {}

    def cached(cfg: dict, until: str) -> dict:
        k = digest(cfg)
        for have in (until, "verify"):
            if (k, have) in cache:
                return cache[(k, have)]
        cache[(k, until)] = real(cfg, until)
        return cache[(k, until)]

    with pytest.MonkeyPatch.context() as mp:
        for mod in (induction, analyze):
            mp.setattr(mod, "run_pipeline", cached)
        yield


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``nfp argv`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code)
    return code, out.getvalue(), err.getvalue()


def run_json(argv: list[str]) -> dict:
    code, out, err = run_cli([*argv, "--json"])
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def known_pair() -> tuple[int, int, int, int]:
    md = (MODEL / "TRAINING.md").read_text()
    lp, hp = map(int, re.search(r"previous-token head: \*\*L(\d+)H(\d+)\*\*", md).groups())
    li, hi = map(int, re.search(r"induction head: \*\*L(\d+)H(\d+)\*\*", md).groups())
    return lp, hp, li, hi


def pair_flags(p) -> list[str]:
    return ["--l1", str(p[0]), "--h1", str(p[1]), "--l2", str(p[2]), "--h2", str(p[3])]


def key(row: dict) -> tuple[int, ...]:
    return tuple(int(row[k]) for k in PAIR_KEYS)


@pytest.fixture(scope="module")
def induction_json():
    return run_json(["induction", str(MODEL), "-v", "--verify"])


@pytest.fixture(scope="module")
def induction_text():
    code, out, err = run_cli(["induction", str(MODEL), "-v", "--verify"])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def analyze_json(known_pair):
    return run_json(["analyze", str(MODEL), *pair_flags(known_pair), "--verify"])


@pytest.fixture(scope="module")
def analyze_text(known_pair):
    code, out, err = run_cli(["analyze", str(MODEL), *pair_flags(known_pair), "--verify"])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def scrambled(tmp_path_factory, known_pair):
    """A copy of the shipped model with the induction head's W_Q a random matrix of the same
    entry scale (seeded)."""
    from nfp_steps.io.hf import read_hf_folder
    from nfp_steps.io.loader import save_model

    w = copy.deepcopy(read_hf_folder(MODEL))
    _, _, li, hi = known_pair
    rng = np.random.default_rng(0)
    w.W_Q[li, hi] = rng.standard_normal(w.W_Q[li, hi].shape) * w.W_Q[li, hi].std()
    path = tmp_path_factory.mktemp("scrambled") / "toy"
    save_model(w, path, "hf")
    return path


def test_known_pair_ranks_first_and_beats_its_control(induction_json, known_pair):
    first = induction_json["pairs"][0]
    assert key(first) == known_pair
    v = induction_json["verify"][0]
    assert key(v) == known_pair
    assert v["delta_base"] > 0 and v["competence"]
    # the pair's zero-ablation lowers Δ more than the control heads' ablation does, at the
    # last position and averaged over every induction position of the prompt batch
    assert v["impact_zero"] > v["impact_control"] > -np.inf
    assert v["avg_impact_zero"] > v["avg_impact_control"]
    assert v["n_positions"] > 0 and induction_json["n_prompts"] == 4
    ctrl = v["control"].split()  # one same-layer control per pair head, outside the pair
    l1, h1, l2, h2 = known_pair
    assert ctrl[0].startswith(f"L{l1}H") and ctrl[1].startswith(f"L{l2}H")
    assert f"L{l1}H{h1}" not in ctrl and f"L{l2}H{h2}" not in ctrl


def test_analyze_agrees_with_the_ranking_row(induction_json, analyze_json, known_pair):
    row = induction_json["pairs"][0]
    a = analyze_json
    assert a["mode"] == "pair" and a["rank"] == 1 and a["candidate"]
    for k, v in row.items():
        if k != "rank":
            assert a["pair"][k] == v, k
    assert a["head1"]["values"]["eps_ub"] == row["eps1_ub"]
    assert a["head2"]["values"]["eps_ub"] == row["eps2_ub"]
    # the decomposition names candidates that really hold the used value
    for h in ("head1", "head2"):
        vals = a[h]["values"]
        for prefix, used in (("qk_ub_", "qk_used"), ("vo_ub_", "vo_used")):
            assert a[h][used], prefix
            for name in a[h][used]:
                assert vals[prefix + name] == vals[prefix[:-1]]
        assert vals["pattern_ub"] == min(vals["pattern_ub_centred"], vals["pattern_ub_simple"])
    # the ablation of the pair is the same measurement in both commands
    assert a["verify"][0]["impact_zero"] == induction_json["verify"][0]["impact_zero"]
    # amplification: product of the rigorous factors, never below the plain pair error
    amp = a["amplification"]
    assert amp["path_ub"] >= (1 + amp["mlp_l1_ub"]) * amp["ln1_l2_ub"]
    assert amp["amplified_pair_error_ub"] >= row["pairError_ub"] * amp["path_ub"] * (1 - 1e-12)
    assert a["within_threshold"] == (row["pairError_ub"] <= 0.1)


def test_scrambled_induction_head_leaves_the_top_and_its_impact_collapses(
        scrambled, known_pair, induction_json, analyze_json):
    doc = run_json(["induction", str(scrambled)])
    ranks = {key(r): r["rank"] for r in doc["pairs"]}
    n_heads = 4
    assert ranks.get(known_pair, np.inf) > n_heads
    v = run_json(["analyze", str(scrambled), *pair_flags(known_pair), "--verify"])["verify"][0]
    before = analyze_json["verify"][0]
    assert v["avg_impact_zero"] < 0.5 * before["avg_impact_zero"]


def test_induction_text_matches_json(induction_text, induction_json):
    lines = [ln for ln in induction_text.splitlines() if "| Mech:" in ln]
    assert len(lines) == len(induction_json["pairs"])
    fields = {"Mech": "mechScore", "Circuit": "circuitScore", "Effect": "effect",
              "kComp": "kComp", "indScore": "indScore", "prevTok": "prevTok", "δ": "delta",
              "Error": "pairError_ub"}
    for line, row in zip(lines, induction_json["pairs"], strict=True):
        assert line.startswith(f"L{row['l1']}H{row['h1']} -> L{row['l2']}H{row['h2']} |")
        for label, k in fields.items():
            assert f"| {label}: {fmt(row[k])} |" in line, (label, line)
    assert f"Target: {induction_json['target']['description']}" in induction_text
    assert f"Scores: mean over {induction_json['n_prompts']} prompts" in induction_text
    vlines = [ln for ln in induction_text.splitlines() if re.match(r"\d+ \| L\dH\d -> ", ln)]
    assert len(vlines) == len(induction_json["verify"])
    for line, v in zip(vlines, induction_json["verify"], strict=True):
        cells = [c.strip() for c in line.split(" | ")]
        assert cells[2:7] == [fmt(v[k]) for k in ("delta_base", "delta_zero", "impact_zero",
                                                  "rel_zero", "impact_control")]
        assert cells[-1] == v["checks"]


def test_analyze_text_matches_json(analyze_text, analyze_json):
    a, p = analyze_json, analyze_json["pair"]
    assert f"ε₁ = {fmt(p['eps1_ub'])}  ε₂ = {fmt(p['eps2_ub'])}" in analyze_text
    assert f"(1+ε₁)(1+ε₂)-1 = {fmt(p['pairError_ub'])}" in analyze_text
    assert f"= {fmt(p['prevTok'])} ± {fmt(p['prevTok_sd'])}" in analyze_text
    assert f"kComp_raw - 1/√64 = {fmt(p['kComp'])}" in analyze_text
    assert f"kComp·indScore·prevTok = {fmt(p['mechScore'])}" in analyze_text
    amp = a["amplification"]
    assert f"= {fmt(amp['path_ub'])}\n" in analyze_text
    assert f"pair error · ‖T‖ ub = {fmt(amp['amplified_pair_error_ub'])}" in analyze_text
    for lay in a["layers"]:
        assert f"L{lay['layer']}: C_ub={fmt(lay['C_ub'])}  C_lb={fmt(lay['C_lb'])}" in analyze_text
    assert "within threshold: " + ("yes" if a["within_threshold"] else "no") in analyze_text


def test_analyze_all_pairs_layout_matches_json(induction_json):
    code, out, err = run_cli(["analyze", str(MODEL), "--threshold", "1e9"])
    assert code == 0, err
    doc = run_json(["analyze", str(MODEL), "--threshold", "1e9"])
    assert doc["mode"] == "all"
    cands = doc["induction_candidates"]
    # the same candidate set as the induction ranking (the original used another filter)
    assert {key(r) for r in cands} == {key(r) for r in induction_json["pairs"]}
    assert "NFP Circuit Analysis Report" in out
    assert f"INDUCTION HEAD CANDIDATES ({len(cands)} found, {len(cands)} with" in out
    errs = [float(m) for m in re.findall(r"Combined Error: ([\d.]+)", out)]
    assert errs == sorted(errs) and [fmt(e) for e in errs] == [fmt(r["pairError_ub"])
                                                                for r in cands]
    amp = [m for m in re.findall(r"Amplified Error: ([\d.]+)", out)]
    assert amp == [fmt(d["amplified_error_ub"]) for d in doc["deep_circuits"]]
    code, out, _ = run_cli(["analyze", str(MODEL), "--threshold", "0"])
    assert f"({len(cands)} found, 0 with Combined Error" in out


def test_output_file_and_flag_errors(tmp_path, known_pair):
    dest = tmp_path / "report.json"
    code, out, err = run_cli(["analyze", str(MODEL), *pair_flags(known_pair), "--json",
                              "-o", str(dest)])
    assert code == 0 and out == "" and f"Report written to {dest}" in err
    assert json.loads(dest.read_text())["pair"]["l1"] == known_pair[0]
    for argv, msg in (
        (["--l1", "0", "--h1", "2"], "give all of --l1 --h1 --l2 --h2 or none (missing --l2, "),
        (pair_flags((1, 0, 0, 1)), "--l1 1 must be below --l2 0"),
        (pair_flags((0, 9, 1, 1)), "--h1 9 is out of range"),
        (["--correct", "3"], "--correct and --incorrect must be given together"),
    ):
        code, out, err = run_cli(["analyze", str(MODEL), *argv])
        assert code == 1 and out == "" and msg in err, err
    code, _, err = run_cli(["analyze", str(MODEL), "--batch", "0"])
    assert code == 1 and "prompt.batch" in err
    code, _, err = run_cli(["induction", str(MODEL), "--nonsense"])
    assert code == 1 and "unrecognized arguments" in err


def test_no_target_exits_2_and_fallback_warns(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prompt: {kind: tokens, tokens: [1, 2, 3, 4, 5, 6]}\n")
    for cmd in ("induction", "analyze"):
        code, out, err = run_cli([cmd, str(MODEL), "--config", str(cfg)])
        assert code == 2 and out == ""
        assert "No valid induction target could be derived from TOKENS" in err
    # explicit flags override the missing history (checked on the scores stage alone: the
    # bound stages are slow on very short prompts, see jacobian_diag.head_jacobian_norms)
    import argparse

    from nfp_steps.commands.common import add_pipeline_flags, build_config
    from nfp_steps.pipeline import run_in_memory

    p = argparse.ArgumentParser()
    add_pipeline_flags(p)
    args = p.parse_args([str(MODEL), "--config", str(cfg), "--correct", "5", "--incorrect", "7"])
    sc = run_in_memory(build_config(args), "cli", until="scores")["scores"].dataset
    assert sc.attrs["target_description"] == "logit_diff(5-7)"
    assert sc.attrs["target_source"] == "flags"
    # a .nfpt without TOKENS: the original's fallback target with its warning; --verify: exit 2
    from nfp_steps.io.hf import read_hf_folder
    from nfp_steps.io.loader import bake_prompt, save_model

    w = bake_prompt(read_hf_folder(MODEL), np.random.default_rng(0).integers(0, 128, 20))
    nfpt = tmp_path / "noTokens.nfpt"
    save_model(replace(w, tokens=None, wte=None, wpe=None), nfpt, "nfpt-text")
    code, out, err = run_cli(["induction", str(nfpt)])
    assert code == 0, err
    assert "Warning: No TOKENS section found; using default target logit_diff(0-1)." in out
    assert "Target: logit_diff(0-1)" in out
    code, out, err = run_cli(["induction", str(nfpt), "--verify"])
    assert code == 2 and out == "" and "Cannot infer induction target token" in err
    doc = run_json(["induction", str(nfpt)])
    assert doc["warnings"][0].startswith("Warning: No TOKENS") and doc["n_prompts"] == 1


def test_every_other_command_json_matches_text(tmp_path):
    code, text, _ = run_cli(["rope", "--seq-len", "3", "--pairs", "2"])
    doc = run_json(["rope", "--seqLen", "3", "--pairs", "2"])
    assert code == 0 and doc["command"] == "rope"
    assert f"here (numeric) {doc['linf_numeric']:.6f}" in text and doc["linf_bound"] == 2.0
    dest = tmp_path / "toy.nfpt"
    doc = run_json(["export", str(MODEL), "--output", str(dest), "--seq-len", "8"])
    assert doc["command"] == "export" and doc["output"] == str(dest) and dest.is_file()
    assert doc["format"] == "nfpt-text" and doc["dims"]["num_layers"] == 2
    code, text, _ = run_cli(["export", str(MODEL), "--output", str(tmp_path / "t2.nfpt"),
                             "--seqLen", "8"])
    assert code == 0 and text.startswith(f"wrote {tmp_path / 't2.nfpt'} (nfpt-text; 2 layers")
    doc = run_json(["train-toy", "--output", str(tmp_path / "m"), "--steps", "2",
                    "--mlp-steps", "0", "--width", "8", "--heads", "2", "--vocab", "16",
                    "--seq-len", "16", "--batch", "4", "--eval-batches", "1", "--eval-every",
                    "1"])
    assert doc["command"] == "train-toy" and doc["circuit_formed"] is False
    assert doc["config"]["width"] == 8 and (tmp_path / "m" / "config.json").is_file()
    assert doc["summary"].endswith("circuit=no")
    code, text, _ = run_cli(["train-toy", "--output", str(tmp_path / "m2"), "--steps", "2",
                             "--mlp-steps", "0", "--width", "8", "--heads", "2", "--vocab", "16",
                             "--seq-len", "16", "--batch", "4", "--eval-batches", "1",
                             "--eval-every", "1", "-q"])
    assert code == 0
    assert text == f"wrote {tmp_path / 'm2'} (NO circuit): {doc['summary']}\n"


def test_flag_spellings_reach_the_config():
    """camelCase and kebab-case spellings set the same config keys."""
    import argparse

    from nfp_steps.commands import induction

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    induction.register(sub)
    a = p.parse_args(["induction", str(MODEL), "--seqLen", "20", "--diagTop", "3",
                      "--targetSlack", "4", "--kcomp", "ln-fold", "--batch", "2"])
    b = p.parse_args(["induction", str(MODEL), "--seq-len", "20", "--diag-top", "3",
                      "--target-slack", "4", "--kcomp", "ln_fold", "--batch", "2"])
    ca, cb = induction._config(a), induction._config(b)
    assert ca == cb
    assert ca["prompt"]["seq_len"] == 20 and ca["prompt"]["batch"] == 2
    assert ca["ranking"]["diag_top"] == 3 and ca["induction"]["kcomp"] == "ln_fold"
    assert ca["bounds"]["layers"]["adaptive"]["target_slack"] == 4.0


def test_analyze_all_pairs_verbose_diagnostics_and_verify(induction_json):
    code, out, err = run_cli(["analyze", str(MODEL), "-v", "-d", "--verify"])
    assert code == 0, err
    assert "Scores of every candidate (heuristic; ranking order):" in out
    assert "LAYER NORM DIAGNOSTICS (PI vs rigorous)" in out
    assert "Causal Verification (Head Ablation)" in out
    first = induction_json["pairs"][0]
    assert f"1 | L{first['l1']}H{first['h1']} -> L{first['l2']}H{first['h2']} | " in out

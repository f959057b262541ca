"""The adaptive scheduler: never raises an ub, stops for each of its reasons, scope matters."""

from __future__ import annotations

import pytest

from nfp_steps.scheduler import FACTORS, layer_ub, run


def layer(ln=(10.0, 2.0), heads=(5.0, 4.0), w=(3.0, 2.0), gelu=(1.13, 1.0)):
    return {"ln1": list(ln), "heads": list(heads), "ln2": list(ln), "w_in": list(w),
            "gelu": list(gelu), "w_out": list(w)}


def test_target_reached():
    tiers = [layer(), layer(ln=(4.0, 1.0))]
    res = run(tiers, [20.0, 20.0], target_slack=8.0, scope="all")
    assert res.stop == "target"
    assert all(u / 20.0 <= 8.0 for u in res.ub) and len(res.steps) < 12
    assert all(s.ub_after <= s.ub_before for s in res.steps)  # never raises an ub


def test_budget_spent():
    res = run([layer(), layer()], [1e-3, 1e-3], max_upgrades=3, scope="all")
    assert res.stop == "budget" and len(res.steps) == 3


def test_stalls_when_the_improvement_is_too_small():
    flat = layer(ln=(10.0, 9.999), heads=(5.0, 5.0), w=(3.0, 3.0), gelu=(1.13, 1.13))
    res = run([flat], [1.0], min_rel_improve=0.01, scope="all")
    assert res.stop == "stalled"
    assert res.steps and not res.steps[-1].applied
    assert res.ub[0] == layer_ub({f: flat[f][0] for f in FACTORS})


def test_scope_changes_what_is_upgraded_and_runs_are_identical():
    tiers = [layer(), layer(heads=(50.0, 1.0))]
    ln_only = run(tiers, [1.0, 1.0], scope="layernorm")
    every = run(tiers, [1.0, 1.0], scope="all")
    assert {s.factor for s in ln_only.steps} <= {"ln1", "ln2"}
    assert {"heads", "w_in"} & {s.factor for s in every.steps}
    assert sum(every.ub) < sum(ln_only.ub)
    again = run(tiers, [1.0, 1.0], scope="all")
    assert [s.line() for s in again.steps] == [s.line() for s in every.steps]
    assert again.ub == every.ub
    with pytest.raises(ValueError, match="adaptiveScope"):
        run(tiers, [1.0, 1.0], scope="mlp")


def test_worst_slack_first_and_zero_lb_is_infinite_slack():
    res = run([layer(), layer()], [100.0, 0.0], max_upgrades=1, scope="all")
    assert res.steps[0].layer == 1

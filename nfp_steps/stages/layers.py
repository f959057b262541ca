"""Stage "layers": rigorous per-layer constants a_l, m_l, C_l and their prefix/suffix products.

C_l = a_l + m_l + a_l·m_l ≥ ‖J_l − I‖₂ with a_l = ‖J_LN1‖ · Σ_h (value + pattern ub) and
m_l = ‖J_LN2‖ · ‖W_in‖ · |GELU′| · ‖W_out‖, every factor a rigorous ub with tiers of increasing
tightness (:mod:`nfp_steps.scheduler`). Without the adaptive scheduler every factor uses its
tightest tier; with it, tiers are raised where the slack C_l / lb_l is worst. The certified lower
bound lb_l (Krylov vector, ball arithmetic) is checked against C_l on every run.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights


def _opnorm_tiers(c: dict[str, float]) -> list[float]:
    """Frobenius, the best candidate without the Cholesky certificate, and the best of all."""
    cheap = min(v for k, v in c.items() if k not in ("cholesky", "used"))
    return [c["frobenius"], cheap, c["used"]]


def factor_tiers(inputs: Inputs, cfg: dict) -> list[dict[str, list[float]]]:
    """Per layer, each factor's valid upper bounds from loosest to tightest."""
    from nfp_steps import bounds as B
    from nfp_steps import rigor as R
    from nfp_steps.layer_lower import mlp_input_bounds
    from nfp_steps.progress import track

    w = weights(inputs)
    ln, hd = inputs["layernorm"], inputs["heads"]
    x = inputs["forward"]["x"].values
    local_ln = ln.attrs["mode"] == "local"
    local_gelu = cfg["bounds"]["layers"]["gelu_deriv"] == "local"
    out = []
    for i in track(range(w.n_layers), "layers: upper-bound tiers"):
        # the layer's Jacobian is taken at the exact y* = x_l + attn(x_l): LN2 and GELU′ are
        # bounded there (a ball around the stored y), not at the stored y
        ln2_rows, g_local = mlp_input_bounds(w, i, x[i])
        value = hd["value_ub"].values[i]
        heads = [float(R.sum_nonneg_ub(R.add_up(value, hd[k].values[i])))
                 for k in ("pattern_ub_simple", "pattern_ub")]
        # tiers: Frobenius; the cheap candidates (no Cholesky); every candidate (certified tight)
        w_in, w_out = (_opnorm_tiers(B.opnorm_candidates(m)) for m in (w.W_in[i], w.W_out[i]))
        t = {
            "ln1": [float(ln["ln1_global_ub"].values[i])],
            "heads": heads,
            "ln2": [float(ln["ln2_global_ub"].values[i])],
            "w_in": w_in,
            "gelu": [B.GELU_DERIV_SUP],
            "w_out": w_out,
        }
        if local_ln:
            t["ln1"].append(float(ln["ln1_local_ub"].values[i]))
            t["ln2"].append(float(np.max(ln2_rows)))
        if local_gelu:
            t["gelu"].append(min(g_local, B.GELU_DERIV_SUP))
        out.append({k: [min(v[: j + 1]) for j in range(len(v))] for k, v in t.items()})
    return out


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B
    from nfp_steps import rigor as R
    from nfp_steps import scheduler as S
    from nfp_steps.jacobian_diag import layer_residual_pi, torch_params
    from nfp_steps.layer_lower import layer_lower_bound
    from nfp_steps.progress import track

    w = weights(inputs)
    L = w.n_layers
    x = inputs["forward"]["x"].values
    lcfg = cfg["bounds"]["layers"]
    tiers = factor_tiers(inputs, cfg)
    params = torch_params(w)
    # certified lower bounds: Rayleigh quotients of Krylov vectors, in ball arithmetic
    c_lb = np.array([layer_lower_bound(w, i, x[i], lcfg["krylov_steps"], params=params)
                     for i in track(range(L), "layers: certified lower bounds")])
    adaptive = lcfg["adaptive"]
    if adaptive["enabled"]:
        sched = S.run(tiers, list(c_lb), target_slack=adaptive["target_slack"],
                      max_upgrades=adaptive["max_upgrades"],
                      min_rel_improve=adaptive["min_rel_improve"], scope=adaptive["scope"])
        chosen = sched.tiers
        log = [s.line() for s in sched.steps]
        stop = sched.stop
    else:
        chosen = [{f: len(t[f]) - 1 for f in S.FACTORS} for t in tiers]
        log, stop = [], "not run"
    vals = [{f: tiers[i][f][chosen[i][f]] for f in S.FACTORS} for i in range(L)]
    a, m, c = (np.array(col) for col in zip(*(S.layer_parts(v) for v in vals), strict=True))
    for i in range(L):
        if not c_lb[i] <= c[i]:
            raise ValueError(f"layer {i}: certified lower bound {c_lb[i]!r} on ‖J_l − I‖₂ exceeds "
                             f"the upper bound C_ub = {c[i]!r}: a bound is wrong (please report)")
    slack = np.array([S.slack(c[i], c_lb[i]) for i in range(L)])
    prefix = np.ones(L + 1)
    for i in range(L):
        prefix[i + 1] = float(R.mul_up(prefix[i], R.add_up(1.0, c[i])))
    suffix = np.ones(L + 1)
    for i in range(L - 1, -1, -1):
        suffix[i] = float(R.mul_up(suffix[i + 1], R.add_up(1.0, c[i])))
    # heuristic: power iteration on (J_l − I)ᵀ(J_l − I) with torch JVP/VJP at the stored x_l
    c_pi = np.array([layer_residual_pi(w, x[i], i, params=params)
                     for i in track(range(L), "layers: power iteration (heuristic)")])
    tier_str = [" ".join(f"{f}:{chosen[i][f]}/{len(tiers[i][f]) - 1}" for f in S.FACTORS)
                for i in range(L)]
    data = {
        "attn_ub": ("layer", a), "mlp_ub": ("layer", m), "C_ub": ("layer", c),
        "C_lb": ("layer", c_lb), "slack": ("layer", slack), "C_pi": ("layer", c_pi),
        "tier": ("layer", np.array(tier_str, dtype=str)),
        "prefix_ub": ("layer_io", prefix), "suffix_ub": ("layer_io", suffix),
        "scheduler_log": ("step", np.array(log, dtype=str)),
    }
    for f in S.FACTORS:
        data[f"{f}_ub"] = ("layer", np.array([v[f] for v in vals]))
    ds = xr.Dataset(data)
    ds.attrs.update(gelu_deriv_sup=B.GELU_DERIV_SUP, heuristic=["C_pi"], scheduler_stop=stop,
                    adaptive=bool(adaptive["enabled"]), krylov_steps=int(lcfg["krylov_steps"]))
    # C_ub ≥ ‖J_l − I‖₂ ≥ C_lb (both certified); slack = C_ub / C_lb; tier = chosen/highest tier
    # of each factor; C_pi_heuristic is a power-iteration estimate, not a bound
    lines = ["layer\tattn_ub\tmlp_ub\tC_ub\tC_lb\tslack\tC_pi_heuristic\ttier"]
    for i in range(L):
        cells = [repr(float(v[i])) for v in (a, m, c, c_lb, slack, c_pi)]
        lines.append("\t".join([str(i), *cells, tier_str[i]]))
    return StageResult(ds, {"layers.tsv": "\n".join(lines) + "\n"})

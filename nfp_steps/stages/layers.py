"""Stage "layers": rigorous per-layer constants a_l, m_l, C_l and their prefix/suffix products."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B
    from nfp_steps import rigor as R

    w = weights(inputs)
    ln, hd = inputs["layernorm"], inputs["heads"]
    L = w.n_layers
    a = np.zeros(L)
    m = np.zeros(L)
    c = np.zeros(L)
    win = np.zeros(L)
    wout = np.zeros(L)
    ln2 = np.zeros(L)
    gelu = np.zeros(L)
    x = inputs["forward"]["x"].values
    local_ln = ln.attrs["mode"] == "local"
    local_gelu = cfg["bounds"]["layers"]["gelu_deriv"] == "local"
    from nfp_steps.layer_lower import mlp_input_bounds

    for i in range(L):
        # the layer's Jacobian is taken at the exact y* = x_l + attn(x_l): bound LN2 and GELU′
        # there (a ball around the stored y), not at the stored y
        ln2_rows, g_local = mlp_input_bounds(w, i, x[i])
        ln2[i] = float(np.max(ln2_rows)) if local_ln else float(ln["ln2_global_ub"].values[i])
        gelu[i] = min(g_local, B.GELU_DERIV_SUP) if local_gelu else B.GELU_DERIV_SUP
        heads_sum = float(R.sum_nonneg_ub(R.add_up(hd["value_ub"].values[i],
                                                   hd["pattern_ub"].values[i])))
        a[i] = float(R.mul_up(float(ln["ln1_ub"].values[i]), heads_sum))
        win[i] = B.opnorm_ub(w.W_in[i])
        wout[i] = B.opnorm_ub(w.W_out[i])
        m[i] = float(R.mul_up(R.mul_up(ln2[i], win[i]), R.mul_up(gelu[i], wout[i])))
        c[i] = B.layer_constant(a[i], m[i])
    prefix = np.ones(L + 1)
    for i in range(L):
        prefix[i + 1] = float(R.mul_up(prefix[i], R.add_up(1.0, c[i])))
    suffix = np.ones(L + 1)
    for i in range(L - 1, -1, -1):
        suffix[i] = float(R.mul_up(suffix[i + 1], R.add_up(1.0, c[i])))
    # heuristic: power iteration on (J_l − I)ᵀ(J_l − I) with torch JVP/VJP at the stored x_l
    from nfp_steps.jacobian_diag import layer_residual_pi, torch_params

    params = torch_params(w)
    c_pi = np.array([layer_residual_pi(w, x[i], i, params=params) for i in range(L)])
    # certified: a Rayleigh quotient of a Krylov vector, evaluated in ball arithmetic
    from nfp_steps.layer_lower import layer_lower_bound

    steps = cfg["bounds"]["layers"]["krylov_steps"]
    c_lb = np.array([layer_lower_bound(w, i, x[i], steps, params=params) for i in range(L)])
    for i in range(L):
        if not c_lb[i] <= c[i]:
            raise ValueError(f"layer {i}: certified lower bound {c_lb[i]!r} on ‖J_l − I‖₂ exceeds "
                             f"the upper bound C_ub = {c[i]!r}: a bound is wrong (please report)")
    slack = np.where(c_lb > 0, c / np.where(c_lb > 0, c_lb, 1.0), np.inf)
    ds = xr.Dataset({
        "attn_ub": ("layer", a), "mlp_ub": ("layer", m), "C_ub": ("layer", c),
        "C_pi": ("layer", c_pi), "C_lb": ("layer", c_lb), "slack": ("layer", slack),
        "W_in_ub": ("layer", win), "W_out_ub": ("layer", wout),
        "ln2_ub": ("layer", ln2), "gelu_deriv_ub": ("layer", gelu),
        "prefix_ub": ("layer_io", prefix), "suffix_ub": ("layer_io", suffix),
    })
    ds.attrs["gelu_deriv_sup"] = B.GELU_DERIV_SUP
    ds.attrs["heuristic"] = ["C_pi"]
    # C_ub ≥ ‖J_l − I‖₂ ≥ C_lb (both certified); slack = C_ub / C_lb; C_pi_heuristic is a
    # power-iteration estimate, not a bound
    lines = ["layer\tattn_ub\tmlp_ub\tC_ub\tC_lb\tslack\tC_pi_heuristic"]
    for i in range(L):
        cells = [repr(float(v[i])) for v in (a, m, c, c_lb, slack, c_pi)]
        lines.append("\t".join([str(i), *cells]))
    return StageResult(ds, {"layers.tsv": "\n".join(lines) + "\n"})

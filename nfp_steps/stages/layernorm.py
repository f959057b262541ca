"""Stage "layernorm": rigorous LayerNorm Jacobian bounds per row, per layer, and global."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B

    w = weights(inputs)
    fw = inputs["forward"]
    x, y = fw["x"].values[:-1], fw["y"].values
    eps = w.eps
    ln1_rows = np.stack([B.layernorm_row_ub(x[i], w.ln1_g[i], eps) for i in range(w.n_layers)])
    ln2_rows = np.stack([B.layernorm_row_ub(y[i], w.ln2_g[i], eps) for i in range(w.n_layers)])
    ln1_glob = np.array([B.layernorm_global_ub(w.ln1_g[i], eps) for i in range(w.n_layers)])
    ln2_glob = np.array([B.layernorm_global_ub(w.ln2_g[i], eps) for i in range(w.n_layers)])
    # heuristic diagnostics (power iteration on the exact Jacobian): labelled *_pi, not bounds
    ln1_pi = np.stack([B.layernorm_row_pi(x[i], w.ln1_g[i], eps) for i in range(w.n_layers)])
    ln2_pi = np.stack([B.layernorm_row_pi(y[i], w.ln2_g[i], eps) for i in range(w.n_layers)])
    local = cfg["bounds"]["layernorm"]["mode"] == "local"
    ds = xr.Dataset({
        "ln1_var_lb": (("layer", "pos"), np.stack([B.variance_lb(r) for r in x])),
        "ln2_var_lb": (("layer", "pos"), np.stack([B.variance_lb(r) for r in y])),
        "ln1_row_ub": (("layer", "pos"), ln1_rows),
        "ln2_row_ub": (("layer", "pos"), ln2_rows),
        "ln1_local_ub": ("layer", ln1_rows.max(axis=1)),
        "ln2_local_ub": ("layer", ln2_rows.max(axis=1)),
        "ln1_global_ub": ("layer", ln1_glob),
        "ln2_global_ub": ("layer", ln2_glob),
        "ln1_ub": ("layer", ln1_rows.max(axis=1) if local else ln1_glob),
        "ln2_ub": ("layer", ln2_rows.max(axis=1) if local else ln2_glob),
        "ln1_row_pi": (("layer", "pos"), ln1_pi),
        "ln2_row_pi": (("layer", "pos"), ln2_pi),
        "ln1_pi": ("layer", ln1_pi.max(axis=1)),
        "ln2_pi": ("layer", ln2_pi.max(axis=1)),
    })
    ds.attrs["mode"] = cfg["bounds"]["layernorm"]["mode"]
    ds.attrs["heuristic"] = ["ln1_row_pi", "ln2_row_pi", "ln1_pi", "ln2_pi"]
    return StageResult(ds, {})

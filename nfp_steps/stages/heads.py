"""Stage "heads": rigorous per-head bounds (value and pattern terms, ε) at the prompt."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, weights

HEAD_TSV = ("eps_ub", "value_lb", "value_ub", "pattern_lb", "pattern_ub", "attn_norm_lb",
            "attn_norm_ub", "qk_lb", "qk_ub", "vo_lb", "vo_ub", "z_norm_ub")


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps import bounds as B
    from nfp_steps import rigor as R
    from nfp_steps.jacobian_diag import head_jacobian_norms
    from nfp_steps.layer_lower import head_pattern_lower_bound
    from nfp_steps.progress import Progress

    w = weights(inputs)
    fw = inputs["forward"]
    x, z1 = fw["x"].values, fw["z1"].values
    res: dict[str, np.ndarray] = {}
    z_rad_max = np.zeros(w.n_layers)
    bar = Progress(w.n_layers * w.n_heads, "heads")
    for layer in range(w.n_layers):
        # the head's input is the exact LN1 of the stored x_l: enclose it (z1 ± z_rad)
        z, z_rad = B.layernorm_enclosure(x[layer], w.ln1_g[layer], w.ln1_b[layer], w.eps)
        z_rad = np.asarray(R.up(z_rad + np.abs(z - z1[layer])))
        z_rad_max[layer] = float(z_rad.max())
        z_norm = B.opnorm_candidates(z1[layer], z_rad)  # shared by the layer's heads
        for h in range(w.n_heads):
            hb = B.head_bounds(
                z1[layer], w.W_Q[layer, h], w.b_Q[layer, h], w.W_K[layer, h], w.b_K[layer, h],
                w.W_V[layer, h], w.W_O[layer, h], softmax=cfg["bounds"]["heads"]["softmax"],
                z_rad=z_rad, z_norm=z_norm,
            )
            # heuristic diagnostic for small prompts: dense autograd norms (NaN when too large)
            hb.update(head_jacobian_norms(w, z1[layer], layer, h))
            # certified lower bound on the pattern term (Rayleigh quotient, ball arithmetic)
            hb["pattern_lb"] = head_pattern_lower_bound(w, layer, h, z1[layer], z_rad)
            if not hb["pattern_lb"] <= hb["pattern_ub"]:
                raise ValueError(f"head L{layer}H{h}: certified pattern-term lower bound "
                                 f"{hb['pattern_lb']!r} exceeds its upper bound "
                                 f"{hb['pattern_ub']!r}: a bound is wrong (please report)")
            if not hb["value_lb"] <= hb["value_ub"]:
                raise ValueError(f"head L{layer}H{h}: value-term lower bound {hb['value_lb']!r} "
                                 f"exceeds its upper bound {hb['value_ub']!r} (please report)")
            for k, v in hb.items():
                res.setdefault(k, np.zeros((w.n_layers, w.n_heads)))[layer, h] = v
            bar.update()
    ds = xr.Dataset({k: (("layer", "head"), v) for k, v in res.items()})
    ds["z1_rad_max"] = ("layer", z_rad_max)
    ds.attrs["heuristic"] = ["head_autograd", "value_autograd", "pattern_autograd"]
    lines = ["layer\thead\t" + "\t".join(HEAD_TSV)]
    for layer in range(w.n_layers):
        for h in range(w.n_heads):
            lines.append(f"{layer}\t{h}\t" + "\t".join(repr(float(res[k][layer, h]))
                                                       for k in HEAD_TSV))
    return StageResult(ds, {"heads.tsv": "\n".join(lines) + "\n"})

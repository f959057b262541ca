"""Stage "certificate": per-layer constants and the total amplification bound, exact p/q."""

from __future__ import annotations

import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, tokens


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.certificate import build_certificate, dumps, product_one_plus_ub

    ly = inputs["layers"]
    w_attrs = inputs["export"].attrs
    c = ly["C_ub"].values
    toks = tokens(inputs)
    cert, text = build_certificate(model, str(w_attrs.get("source_sha256", "")),
                                   None if toks is None else [int(t) for t in toks], c,
                                   ly["attn_ub"].values, ly["mlp_ub"].values)
    ds = xr.Dataset({"C_ub": ("layer", c),
                     "total_ub": ((), product_one_plus_ub(c))})
    return StageResult(ds, {"certificate.json": dumps(cert), "certificate.txt": text})

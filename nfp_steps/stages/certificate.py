"""Stage "certificate": global and local layer constants and induction-head certificates,
written exactly, then verified by the independent checker (the result is in the store's attrs
as ``check_status`` and on the last line of certificate.txt)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs, table_rows, tokens, weights


def make_certificate(w, inputs: Inputs, cfg: dict, model: str, model_path: str,
                     gelu_flag: float | None = None, model_eps: float | None = None) -> dict:
    """certificate.json content from the stage results (also used by ``nfp certify``)."""
    from fractions import Fraction

    from nfp_steps.certificate import build_certificate
    from nfp_steps.global_cert import global_claims
    from nfp_steps.induction_cert import head_certificate
    from nfp_steps.local_cert import local_claims

    toks = tokens(inputs)
    x = inputs["forward"]["x"].values
    c = cfg["certificate"]
    n = w.n_ctx if w.n_ctx is not None else x.shape[1]
    weight = global_claims(w, n, None if gelu_flag is None else Fraction(gelu_flag))
    glob = weight if c["global"] else None
    sc = inputs["scores"].attrs
    induction = []
    # one certificate per induction head, for the best-ranked pair it heads (pairs sharing
    # their induction head would repeat the same claims)
    heads: dict[tuple[int, int], tuple] = {}
    for r in table_rows(inputs["ranking"]):
        pair = (int(r["l1"]), int(r["h1"]), int(r["l2"]), int(r["h2"]))
        heads.setdefault(pair[2:], pair)
    if toks is not None:
        for pair in list(heads.values())[: c["pairs"]]:
            hc = head_certificate(w, pair[2], pair[3], x[pair[2]], toks,
                                  int(sc["target_correct"]), int(sc["target_incorrect"]))
            induction.append((pair, hc, x[pair[2]]))
    note = induction_note(c["pairs"], len(heads), toks is not None)
    local = None
    if c["local"]:
        claims, tols = local_claims(w, x, weight)
        local = {"claims": claims, "witness_tol": tols, "witnesses": x[: w.n_layers]}
    return build_certificate(
        model=model, model_path=model_path, sha256=str(w.attrs.get("source_sha256", "")),
        eps=w.eps, tokens=None if toks is None else [int(t) for t in toks],
        global_claims=glob, local=local, induction=induction, gelu_flag=gelu_flag,
        induction_note=note, model_eps=w.eps if model_eps is None else model_eps)


def induction_note(pairs: int, n_candidates: int, has_tokens: bool) -> str | None:
    """Why the certificate has fewer induction entries than ``pairs`` asked for (None: as
    many as asked); ``n_candidates``: distinct induction heads among the ranked pairs."""
    if pairs == 0:
        return None
    if not has_tokens:
        return ("No induction certificate: the prompt has no token ids (a baked-embeddings "
                "prompt without TOKENS), so its induction queries are unknown")
    if n_candidates == 0:
        return (f"No induction certificate: the ranking has no candidate pairs ({pairs} "
                f"requested)")
    if n_candidates < pairs:
        return (f"Only {n_candidates} induction certificate(s): the ranking's candidate pairs "
                f"have {n_candidates} distinct induction head(s), {pairs} requested")
    return None


def check_status(cert: dict, w) -> str:
    """"verified", or "refuted: <claim>" / "unreadable: <why>" from the independent checker."""
    from nfp_steps.check import Refuted, Unreadable, check_certificate

    try:
        check_certificate(cert, weights=w)
    except Refuted as exc:
        return f"refuted: {exc}"
    except Unreadable as exc:
        return f"unreadable: {exc}"
    return "verified"


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    from nfp_steps.certificate import dumps, product_one_plus_ub, report_text

    w = weights(inputs)
    path = str(inputs["export"].attrs.get("source_path") or "")
    cert = make_certificate(w, inputs, cfg, model, path)
    status = check_status(cert, w)
    c = inputs["layers"]["C_ub"].values
    ds = xr.Dataset({"C_ub": ("layer", c), "total_ub": ((), product_one_plus_ub(c)),
                     "n_induction": ((), np.int64(len(cert["induction"])))})
    ds.attrs["check_status"] = status
    text = report_text(cert) + f"Independent check: {status}\n"
    return StageResult(ds, {"certificate.json": dumps(cert), "certificate.txt": text})

"""Assemble ``certificate.json`` and the ``certify`` text report (exact values, never decimals).

Three parts, each a list of claims for the independent checker (:mod:`nfp_steps.check`):

- **global** (:mod:`nfp_steps.global_cert`): per-layer C_l and ∏(1 + C_l) from the weights only,
  valid for every prompt up to the model's context length;
- **local** (:mod:`nfp_steps.local_cert`): C_l = a_l + m_l + a_l·m_l at the analysed prompt,
  from LayerNorm scales, attention column sums and pattern norms there, with the residual
  streams as witnesses (every claim re-derived by the checker);
- **induction** (:mod:`nfp_steps.induction_cert`): per top pair, the induction head's attention
  margins, value range and logit-difference lower bound, with the residual stream as witness.

Numbers are exact: ``p/q`` strings for rationals (floats are dyadic rationals), ``float.hex``
strings for the witness.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np

from nfp_steps import __version__
from nfp_steps import rigor as R

FORMAT = "nfp-certificate-v1"


def exact(v) -> str | None:
    """A float or Fraction as an exact ``p/q`` string (None stays None)."""
    if v is None:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        raise ValueError(f"non-finite value {v} in a certificate")
    return str(Fraction(v))


def product_one_plus_ub(cs: np.ndarray) -> float:
    """ub on ∏(1 + C_l), rounded upward at every step."""
    p = 1.0
    for c in cs:
        p = float(R.mul_up(p, R.add_up(1.0, float(c))))
    return p


def _exact_claims(claims: list[dict]) -> list[dict]:
    return [{**c, "value": exact(c["value"])} for c in claims]


def _induction_json(cert: dict, x: np.ndarray, pair: tuple[int, int, int, int]) -> dict:
    out = {k: v for k, v in cert.items() if k != "queries"}
    for k in ("value_lo", "value_hi", "logit_diff_lb_min", "witness_tol"):
        out[k] = exact(out[k])
    out["pair"] = list(pair)
    out["queries"] = [
        {**r, **{k: exact(r[k]) for k in ("margin_lb", "eps_ub", "val_target_lb",
                                          "logit_diff_lb")}}
        for r in cert["queries"]
    ]
    out["witness_x"] = [[float(v).hex() for v in row] for row in x]
    return out


def build_certificate(
    *, model: str, model_path: str, sha256: str, eps: float, tokens: list[int] | None,
    global_claims: list[dict] | None, local: dict | None, induction: list[tuple],
    gelu_flag: float | None = None, induction_note: str | None = None,
    model_eps: float | None = None,
) -> dict:
    """certificate.json content. ``local``: claims, witness_tol and witnesses (per layer);
    ``induction``: tuples (pair, head certificate, witness x); ``induction_note``: why there
    are fewer induction entries than requested (e.g. the ranking has no candidate pairs), or
    None."""
    from nfp_steps.induction_cert import EXP_TAYLOR_DEGREE

    cert = {
        "format": FORMAT,
        "model": model,
        "model_path": model_path,
        "model_sha256": sha256,
        "model_sha256_of": "the model source as nfp reads it: the file's sha256 for .nfpt, "
                          "for a folder the sha256 over its files' names and sha256s",
        "code_version": __version__,
        "eps": exact(float(eps)),
        "model_eps": exact(float(eps if model_eps is None else model_eps)),
        "act_deriv_flag": None if gelu_flag is None else exact(float(gelu_flag)),
        "prompt_tokens": tokens,
        "exp_taylor_degree": EXP_TAYLOR_DEGREE,
        "global": None if global_claims is None else {
            "meaning": "for every residual input of length <= n (the context length): "
                       "layer_C >= ||J_l - I||_2, total_amplification >= prod (1 + C_l)",
            "claims": _exact_claims(global_claims),
        },
        "local": None if local is None else {
            "meaning": "at the analysed prompt: for every residual stream x' with "
                       "|x' - witnesses[l]| <= witness_tol[l] entrywise, layer_C >= "
                       "||J_l - I||_2; total_amplification >= prod (1 + C_l)",
            "witness_tol": [exact(t) for t in local["witness_tol"]],
            "witnesses": [[[float(v).hex() for v in row] for row in xl]
                          for xl in local["witnesses"]],
            "claims": _exact_claims(local["claims"]),
        },
        "induction": [_induction_json(c, x, pair) for pair, c, x in induction],
        "induction_note": induction_note,
    }
    return cert


def _dec(v, rounding: str) -> str:
    """An exact value shown with 8 significant digits, rounded in the given direction."""
    from decimal import Context, Decimal

    f = Fraction(v)
    ctx = Context(prec=8, rounding=rounding)
    q = ctx.divide(Decimal(f.numerator), Decimal(f.denominator))
    return f"{q:.8g}" if q.adjusted() < -4 or q.adjusted() >= 8 else str(q.normalize(ctx))


def _f(v) -> str:
    """A claimed upper bound for display, rounded up."""
    return _dec(v, "ROUND_CEILING")


def report_text(cert: dict) -> str:
    """The ``certify`` report: the original's layout with correct numbers (decimals rounded up
    for display; the exact values are in certificate.json)."""
    lines = ["SOUND mode: rigorous bounds in exact real arithmetic (rounding included); may be "
             "much looser than heuristic analysis.",
             f"Model: {cert['model']}  sha256: {cert['model_sha256']}"]
    if cert.get("model_eps") is not None and cert["model_eps"] != cert["eps"]:
        lines.append(f"NOTE: LayerNorm eps = {float(Fraction(cert['eps']))!r} (--eps), not the "
                     f"model's {float(Fraction(cert['model_eps']))!r}: every claim below is "
                     "about that variant of the model")
    g = cert["global"]
    if g is not None:
        by = _by_key(g["claims"])
        lines += [f"eps={cert['eps']}, actDerivBound={_f(by[('gelu_deriv_sup', None, None)])}, "
                  "softmaxJacobianNormInfWorst=1/2",
                  "Global (weight-only, every prompt up to the context length):"]
        lines += _layer_lines(by, "")
    if cert["local"] is not None:
        lines.append("Local (at the analysed prompt):")
        lines += _layer_lines(_by_key(cert["local"]["claims"]), "_local")
    for ind in cert["induction"]:
        l1, h1, l2, h2 = ind["pair"]
        n, nv = ind["n_queries"], ind["n_nonvacuous"]
        lines.append(
            f"Induction head L{l2}H{h2} (pair L{l1}H{h1} -> L{l2}H{h2}), target "
            f"logit_diff({ind['correct']}-{ind['incorrect']}): {n} induction queries, "
            f"{nv} non-vacuous; value range [{float(Fraction(ind['value_lo'])):.6g}, "
            f"{float(Fraction(ind['value_hi'])):.6g}]")
        for r in ind["queries"]:
            if r["q"] == max(q["q"] for q in ind["queries"]):
                lines.append(
                    f"  last query q={r['q']} (target key {r['target_key']}): margin>="
                    f"{_lb_text(r['margin_lb'])}, mass away<={_f(r['eps_ub'])}, "
                    f"direct logit-diff contribution>={_lb_text(r['logit_diff_lb'])}"
                    + (" (vacuous)" if r["vacuous"] else ""))
        if ind["logit_diff_lb_min"] is not None:
            lines.append(f"  over all induction queries: contribution>="
                         f"{_lb_text(ind['logit_diff_lb_min'])}")
    if cert.get("induction_note"):
        lines.append(cert["induction_note"])
    lines.append("Exact values and witnesses: certificate.json (`nfp certify --json -o F` "
                 "writes it); check with `nfp check`.")
    return "\n".join(lines) + "\n"


def _by_key(claims: list[dict]) -> dict:
    return {(c["kind"], c.get("layer"), c.get("which")): c["value"] for c in claims}


def _layer_lines(by: dict, suffix: str) -> list[str]:
    """∏(1 + C_l) and one line per layer, from a part's claims (``suffix`` "_local" for the
    local kinds)."""
    lines = [f"totalAmplificationFactor<={_f(by[('total_amplification', None, None)])}"]
    layer = 0
    while ("layer_C", layer, None) in by:
        lines.append(
            f"Layer {layer}: C<={_f(by[('layer_C', layer, None)])} "
            f"(attn<={_f(by[('layer_attn' + suffix, layer, None)])}, "
            f"mlp<={_f(by[('layer_mlp' + suffix, layer, None)])}, "
            f"ln1Bound<={_f(by[('ln_jacobian' + suffix, layer, 'ln1')])}, "
            f"ln2Bound<={_f(by[('ln_jacobian' + suffix, layer, 'ln2')])})")
        layer += 1
    return lines


def _lb_text(v) -> str:
    """A claimed lower bound for display, rounded down."""
    return "n/a" if v is None else _dec(v, "ROUND_FLOOR")


def dumps(cert: dict) -> str:
    return json.dumps(cert, indent=1) + "\n"

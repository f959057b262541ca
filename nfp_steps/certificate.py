"""Per-layer constants as a certificate: exact values, never rounded decimals.

Issue-2 scope: the *local* form (at the analysed prompt) of C_l and ∏(1 + C_l), each an upper
bound computed with outward rounding; the global form, witnesses and the independent checker
come with the certificate issue.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np

from nfp_steps import __version__
from nfp_steps import rigor as R


def exact(v: float) -> str:
    """A float as an exact ``p/q`` string (floats are dyadic rationals)."""
    if not np.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    return str(Fraction(float(v)))


def product_one_plus_ub(cs: np.ndarray) -> float:
    """ub on ∏(1 + C_l), rounded upward at every step."""
    p = 1.0
    for c in cs:
        p = float(R.mul_up(p, R.add_up(1.0, float(c))))
    return p


def build_certificate(
    model: str, sha256: str, tokens: list[int] | None, c_ub: np.ndarray, a_ub: np.ndarray,
    m_ub: np.ndarray,
) -> tuple[dict, str]:
    """(certificate.json content, certificate.txt report)."""
    prod = product_one_plus_ub(c_ub)
    cert = {
        "format": "nfp-certificate-v0",
        "kind": "local",
        "model": model,
        "model_sha256": sha256,
        "code_version": __version__,
        "prompt_tokens": tokens,
        "claims": {
            "layers": [
                {"layer": i, "attn_ub": exact(a), "mlp_ub": exact(m), "C_ub": exact(c)}
                for i, (a, m, c) in enumerate(zip(a_ub, m_ub, c_ub, strict=True))
            ],
            "total_amplification_ub": exact(prod),
        },
        "meaning": "C_ub[l] >= ||J_l - I||_2 at the prompt's float64 forward trajectory; "
                   "total_amplification_ub >= prod_l (1 + C_l).",
        "model_sha256_of": "the model source as nfp reads it: the file's sha256 for .nfpt, "
                           "for a folder the sha256 over its files' names and sha256s",
    }
    lines = [
        "NFP certificate (local, at the analysed prompt)",
        f"Model: {model}",
        f"sha256: {sha256}",
        "",
    ]
    for i, c in enumerate(c_ub):
        lines.append(
            f"Layer {i}: attn_ub={a_ub[i]:.6g} mlp_ub={m_ub[i]:.6g} C_ub={c:.6g}"
        )
    lines.append(f"Total amplification factor ub: {prod:.6g}")
    return cert, "\n".join(lines) + "\n"


def dumps(cert: dict) -> str:
    return json.dumps(cert, indent=2, sort_keys=False) + "\n"

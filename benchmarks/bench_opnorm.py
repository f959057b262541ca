"""Tightness and cost of every rigorous spectral-norm candidate (nfp_steps.opnorm).

    python benchmarks/bench_opnorm.py              # GPT-2-small shapes + the shipped toy model
    python benchmarks/bench_opnorm.py --heads 3 --no-toy

For random GPT-2-small-shaped weights (N(0, 0.02), made locally: no downloads) and for the toy
model in models/nfp-toy, prints each candidate's ratio to the true norm (float64 SVD) and its
time, then the cost of the rigorous computation against plain numpy (SVD, and the Gram eigvalsh
it is built on). Numbers only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nfp_steps import opnorm as O
from nfp_steps import rigor as R

TOY = Path(__file__).resolve().parents[1] / "models" / "nfp-toy"


def timed(f: Callable, *args, reps: int = 1):
    """(result, best wall time in seconds over ``reps`` calls)."""
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = f(*args)
        best = min(best, time.perf_counter() - t)
    return out, best


def opnorm_parts(m: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each candidate of opnorm_candidates timed on its own: name → (bound, seconds)."""
    out = {}
    out["frobenius"] = timed(R.frobenius_ub, m)
    out["schur"] = timed(O.schur_ub, m)
    (gersh, brauer), t = timed(O.abs_gram_lambda_ubs, m, None)
    out["abs_gram_gersh+brauer"] = (float(R.sqrt_up(min(gersh, brauer))), t)
    g, t_gram = timed(O.gram_enclosure, m)
    out["(gram enclosure, shared)"] = (float("nan"), t_gram)
    lam_funcs = {"gram": O.gram_inf_lambda_ub, "gram_gersh": O.gersh_lambda_ub,
                 "gram_brauer": O.brauer_lambda_ub, "trace2": O.trace2_lambda_ub,
                 "trace4": O.trace4_lambda_ub, "cholesky": O.certified_lambda_max_ub}
    for name, f in lam_funcs.items():
        lam, t = timed(f, g)
        out[name] = (float(R.sqrt_up(lam)), t)
    lam, t = timed(O.moment_lambda_ub, g, float(R.sumsq_lb(m)), float(R.sumsq_ub(m)))
    out["moment"] = (float(R.sqrt_up(lam)), t)
    return out


def bench_matrix(name: str, m: np.ndarray, detail: bool = True) -> None:
    """One matrix: candidate ratios and times, rigorous vs plain cost."""
    truth, t_svd = timed(np.linalg.norm, m, 2)
    x = m.T if m.shape[0] >= m.shape[1] else m
    _, t_eig = timed(lambda: np.linalg.eigvalsh(x @ x.T)[-1])
    cand, t_all = timed(O.opnorm_candidates, m)
    lb, t_lb = timed(O.opnorm_lb, m)
    print(f"\n{name} {m.shape}: ‖M‖₂ = {truth:.6g}")
    if detail:
        for key, (val, t) in opnorm_parts(m).items():
            ratio = f"{val / truth:.12f}" if np.isfinite(val) else "-"
            print(f"  {key:26s} ratio {ratio:>16s}  {1e3 * t:8.1f} ms")
    used = cand["used"] / truth
    print(f"  {'used':26s} ratio {used:16.12f}  (all candidates {1e3 * t_all:.1f} ms)")
    print(f"  {'lb':26s} ratio {lb / truth:16.12f}  {1e3 * t_lb:8.1f} ms")
    print(f"  cost: rigorous ub {t_all / t_svd:.2f}x numpy SVD ({1e3 * t_svd:.1f} ms), "
          f"{t_all / t_eig:.2f}x Gram+eigvalsh ({1e3 * t_eig:.1f} ms); "
          f"ub+lb {(t_all + t_lb) / t_svd:.2f}x SVD")


def bench_products(name: str, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """‖A Bᵀ‖₂ for a list of heads: per-candidate ratio range, and times."""
    ratios: dict[str, list[float]] = {}
    t_rig = t_lb = t_dense = t_core = 0.0
    swap = []
    for a, b in pairs:
        truth, t = timed(lambda a=a, b=b: np.linalg.norm(a @ b.T, 2))
        t_dense += t
        _, t = timed(lambda a=a, b=b: np.linalg.svd(np.linalg.qr(a)[1] @ np.linalg.qr(b)[1].T,
                                                    compute_uv=False)[0])
        t_core += t
        cand, t = timed(O.product_candidates, a, b)
        t_rig += t
        lb, t = timed(O.product_lb, a, b)
        t_lb += t
        for k, v in cand.items():
            ratios.setdefault(k, []).append(v / truth)
        ratios.setdefault("lb", []).append(lb / truth)
        swap.append(np.linalg.norm(b.T @ a, 2) / truth)
    n = len(pairs)
    print(f"\n{name}: {n} products, shape {pairs[0][0].shape} x {pairs[0][1].shape}ᵀ")
    for k, v in ratios.items():
        print(f"  {k:18s} ratio min {min(v):.12f}  max {max(v):.12f}")
    print(f"  (invalid swapped ‖BᵀA‖ would give ratio {min(swap):.3f}..{max(swap):.3f})")
    print(f"  per product: rigorous ub {1e3 * t_rig / n:.1f} ms, lb {1e3 * t_lb / n:.1f} ms; "
          f"plain dense SVD {1e3 * t_dense / n:.1f} ms ({t_rig / t_dense:.2f}x), "
          f"plain QR core {1e3 * t_core / n:.2f} ms ({t_rig / t_core:.1f}x)")


def gpt2_small(rng: np.random.Generator, heads: int) -> None:
    d, dh, dff, s = 768, 64, 3072, 0.02
    bench_matrix("random 768x768 (attention c_proj-like)", rng.standard_normal((d, d)) * s)
    bench_matrix("random W_in 768x3072", rng.standard_normal((d, dff)) * s)
    bench_matrix("random W_out 3072x768", rng.standard_normal((dff, d)) * s)
    qk = [(rng.standard_normal((d, dh)) * s, rng.standard_normal((d, dh)) * s)
          for _ in range(heads)]
    bench_products("random QK heads W_Q W_Kᵀ", qk)
    vo = [(rng.standard_normal((d, dh)) * s, (rng.standard_normal((dh, d)) * s).T)
          for _ in range(heads)]
    bench_products("random VO heads W_V W_O (as A Bᵀ, B = W_Oᵀ)", vo)


def toy_model() -> None:
    from nfp_steps.io.loader import load_model

    w = load_model(TOY)
    for layer in range(w.n_layers):
        bench_matrix(f"toy L{layer} W_in", w.W_in[layer], detail=layer == 0)
        bench_matrix(f"toy L{layer} W_out", w.W_out[layer], detail=layer == 0)
    qk = [(w.W_Q[ly, h], w.W_K[ly, h]) for ly in range(w.n_layers) for h in range(w.n_heads)]
    vo = [(w.W_V[ly, h], w.W_O[ly, h].T) for ly in range(w.n_layers) for h in range(w.n_heads)]
    bench_products("toy QK heads", qk)
    bench_products("toy VO heads", vo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", type=int, default=12, help="random heads per product kind")
    ap.add_argument("--no-toy", action="store_true", help="skip the shipped toy model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    O.opnorm_candidates(rng.standard_normal((64, 16)))  # warm up BLAS/LAPACK
    gpt2_small(rng, args.heads)
    if not args.no_toy and (TOY / "config.json").exists():
        toy_model()


if __name__ == "__main__":
    main()

"""Time and peak memory of every stage on GPT-2-small shapes (or smaller), in memory.

    python benchmarks/bench_pipeline.py                  # GPT-2 small: 12x12, d=768, n=256
    python benchmarks/bench_pipeline.py --layers 2 --seq-len 64
    python benchmarks/bench_pipeline.py --layers 2 --width 128 --seq-len 64 --local-cert

Weights are random (hub downloads are impossible here) with GPT-2's init scale. Reports seconds
per stage, the ratio of the rigorous stages to the plain float64 forward pass, and peak RSS.
Numbers only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def random_gpt2(rng, L, H, d, dff, V, n_ctx):
    from nfp_steps.model import GPT2Weights

    dh = d // H
    s = 0.02

    def r(*shape, scale=s):
        return rng.standard_normal(shape) * scale

    wte = r(V, d)
    return GPT2Weights(
        W_Q=r(L, H, d, dh), b_Q=r(L, H, dh), W_K=r(L, H, d, dh), b_K=r(L, H, dh),
        W_V=r(L, H, d, dh), b_V=r(L, H, dh), W_O=r(L, H, dh, d), b_O=r(L, d),
        ln1_g=1 + r(L, d, scale=0.1), ln1_b=r(L, d), ln2_g=1 + r(L, d, scale=0.1), ln2_b=r(L, d),
        W_in=r(L, d, dff), b_in=r(L, dff), W_out=r(L, dff, d), b_out=r(L, d),
        lnf_g=1 + r(d, scale=0.1), lnf_b=r(d), W_U=wte.T, wte=wte, wpe=r(n_ctx, d),
    ).validate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--local-cert", action="store_true",
                    help="include the certificate's local part (its check is O(L·H·n·d·dh) "
                         "big-integer work: hours at GPT-2-small sizes)")
    args = ap.parse_args()

    from nfp_steps.config import load_config
    from nfp_steps.io.zarr_store import weights_to_dataset
    from nfp_steps.run_stage import stage_function
    from nfp_steps.stage_specs import STAGES, StageResult

    rng = np.random.default_rng(0)
    w = random_gpt2(rng, args.layers, args.heads, args.width, 4 * args.width, args.vocab, 1024)
    cfg = load_config({"models": {"bench": "unused"}, "prompt": {"seq_len": args.seq_len},
                       "certificate": {"local": bool(args.local_cert)}})
    out = {"export": StageResult(weights_to_dataset(w), {})}
    times = {}
    for name, spec in STAGES.items():
        if name == "export":
            continue
        func = stage_function(spec)
        t0 = time.perf_counter()
        out[name] = func({k: out[k].dataset for k in spec.inputs}, cfg, "bench")
        times[name] = time.perf_counter() - t0
        print(f"{name:<12} {times[name]:8.2f} s", flush=True)
    fwd = times["forward"]
    rig = times["layernorm"] + times["heads"] + times["layers"]
    print(f"rigorous stages / forward: {rig / fwd:.1f}x")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

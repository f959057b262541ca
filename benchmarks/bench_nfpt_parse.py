"""Parse speed of ``.nfpt`` text at GPT-2-small size (DESIGN §9: >= 100 MB/s, correctly rounded).

Writes a random float32 GPT-2-small-shaped model (L=12, H=12, d=768, dff=3072, V=50257, n=256;
~124M numbers, ~1.3 GB of '%.9g' text, the original exporter's format) with ``write_nfpt_text``,
reads it back with ``read_nfpt_text`` and checks every value bit for bit. Reports MB/s by wall
clock and per CPU-second (the machine may be shared), for 1 and 2 threads, plus the baselines
``np.array(text.split(), dtype=float)`` and ``float()`` per token on a slice.

    python benchmarks/bench_nfpt_parse.py            # full size (needs ~6 GB RAM, 1.3 GB disk)
    python benchmarks/bench_nfpt_parse.py --scale 0.1  # smaller vocab and layers, quick look
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from nfp_steps.io.nfpt_text import read_nfpt_text, write_nfpt_text
from nfp_steps.model import GPT2Weights


def random_gpt2(L: int, V: int, n: int, seed: int = 0) -> GPT2Weights:
    """Random float32-valued weights of GPT-2-small width (d=768, H=12, dff=3072)."""
    rng = np.random.default_rng(seed)
    H, d, dh, dff = 12, 768, 64, 3072

    def r(*shape, scale=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(
            np.float64)

    def one(*shape):  # LayerNorm gains near 1, still float32 values
        return (1 + rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)).astype(
            np.float64)

    wte = r(V, d)
    tokens = rng.integers(0, V, n)
    return GPT2Weights(
        W_Q=r(L, H, d, dh), b_Q=r(L, H, dh), W_K=r(L, H, d, dh), b_K=r(L, H, dh),
        W_V=r(L, H, d, dh), b_V=r(L, H, dh), W_O=r(L, H, dh, d), b_O=r(L, d),
        ln1_g=one(L, d), ln1_b=r(L, d), ln2_g=one(L, d),
        ln2_b=r(L, d), W_in=r(L, d, dff), b_in=r(L, dff), W_out=r(L, dff, d), b_out=r(L, d),
        lnf_g=one(d), lnf_b=r(d), W_U=wte.T.copy(),
        embeddings=(wte[tokens] + r(n, d)).astype(np.float32).astype(np.float64),
        tokens=tokens,
    ).validate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of layers and vocab")
    ap.add_argument("--dir", default=None, help="where to write the file (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the written file")
    args = ap.parse_args()
    L = max(1, round(12 * args.scale))
    V = max(16, round(50257 * args.scale))
    w = random_gpt2(L, V, 256)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "gpt2_random.nfpt")
        t0 = time.perf_counter()
        write_nfpt_text(w, path)
        size = os.path.getsize(path)
        mb = size / 1e6
        print(f"model: L={L}, V={V}, {sum(a.size for a in w.array_fields().values()):,} numbers; "
              f"text {mb:.0f} MB written in {time.perf_counter() - t0:.1f} s")
        for threads in (1, 2):
            c0, t0 = time.process_time(), time.perf_counter()
            back = read_nfpt_text(path, threads=threads)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            for name, arr in w.array_fields().items():
                got = getattr(back, name)
                assert got.dtype == arr.dtype and np.array_equal(
                    got.view(np.int64) if got.dtype == np.float64 else got,
                    arr.view(np.int64) if arr.dtype == np.float64 else arr), name
            print(f"read_nfpt_text, {threads} thread(s): {wall:.2f} s wall = {mb / wall:.0f} MB/s "
                  f"({mb / cpu:.0f} MB per CPU-second); number_origin="
                  f"{back.attrs['number_origin']}; every value bit-exact")
            del back
        with open(path, "rb") as f:
            chunk = f.read(100_000_000)
        chunk = chunk[:chunk.rfind(b"\n")]
        body = chunk[chunk.find(b"LAYER 0"):].decode()
        words = [t for t in body.split() if t[0] in "-0123456789."]
        text = " ".join(words)
        t0 = time.perf_counter()
        ref = np.array(text.split(), dtype=np.float64)
        base = len(text) / 1e6 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref2 = np.fromiter(map(float, text.split()), np.float64, len(ref))
        base2 = len(text) / 1e6 / (time.perf_counter() - t0)
        assert np.array_equal(ref, ref2)
        print(f"baselines on {len(text) / 1e6:.0f} MB: np.array(str.split(), float) "
              f"{base:.0f} MB/s, float() per token {base2:.0f} MB/s")
        if args.keep:
            keep = os.path.abspath("gpt2_random.nfpt")
            os.replace(path, keep)
            print(f"kept {keep}")
    print(f"load average now: {os.getloadavg()[0]:.2f} (2 cores; other jobs slow this down)")


if __name__ == "__main__":
    main()

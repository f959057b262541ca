"""Shared helpers of the I/O tests: random weight sets, tiny HF checkpoints, exact comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nfp_steps.model import GPT2Weights

#: shared/ lies beside the repository (here and in CI); FIXTURE_TEXT is a copy of the file.
SHARED_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / \
    "tiny_sound_model.nfpt"
FIXTURE_TEXT = """\
NFP_TEXT_V2
num_layers=1
num_heads=1
model_dim=4
head_dim=2
hidden_dim=4
vocab_size=10
seq_len=2

LAYER 0
HEAD 0
W_Q
0.10 -0.20
0.30 0.40
-0.50 0.60
0.70 -0.80
b_Q
0.01 -0.02
W_K
-0.11 0.21
0.31 -0.41
0.51 0.61
-0.71 0.81
b_K
0.03 -0.04
W_V
0.05 0.06
-0.07 0.08
0.09 -0.10
0.11 0.12
b_V
0.001 -0.002
W_O
0.13 -0.14 0.15 -0.16
0.17 0.18 -0.19 0.20
ATTN_BIAS
0.001 0.002 0.003 0.004
MLP
W_in
0.10 0.00 -0.10 0.20
0.05 -0.05 0.10 0.00
-0.20 0.30 0.00 -0.10
0.01 0.02 0.03 0.04
b_in
0.001 -0.002 0.003 -0.004
W_out
0.02 0.01 0.00 -0.01
-0.03 0.04 0.05 0.06
0.07 -0.08 0.09 -0.10
0.11 0.12 -0.13 0.14
b_out
0.0001 -0.0002 0.0003 -0.0004
LN1_GAMMA
1.0 1.0 1.0 1.0
LN1_BETA
0.0 0.0 0.0 0.0
LN2_GAMMA
1.0 1.0 1.0 1.0
LN2_BETA
0.0 0.0 0.0 0.0
"""


def random_weights(seed: int = 0, *, L: int = 2, H: int = 2, d: int = 4, dh: int = 2,
                   dff: int = 6, V: int = 7, n: int | None = 3, n_ctx: int | None = None,
                   float32: bool = False) -> GPT2Weights:
    """Random weights; ``n`` baked prompt length (None: weights-only), ``n_ctx``: add wte/wpe
    (HF style, tied W_U), ``float32``: every value exactly a float32."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        x = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 2, shape)
        return x.astype(np.float32).astype(np.float64) if float32 else x

    w = GPT2Weights(
        W_Q=r(L, H, d, dh), b_Q=r(L, H, dh), W_K=r(L, H, d, dh), b_K=r(L, H, dh),
        W_V=r(L, H, d, dh), b_V=r(L, H, dh), W_O=r(L, H, dh, d), b_O=r(L, d),
        ln1_g=r(L, d), ln1_b=r(L, d), ln2_g=r(L, d), ln2_b=r(L, d), W_in=r(L, d, dff),
        b_in=r(L, dff), W_out=r(L, dff, d), b_out=r(L, d), lnf_g=r(d), lnf_b=r(d), W_U=r(d, V),
        eps=1e-5, gelu_kind="tanh",
    )
    if n_ctx is not None:
        w.wte, w.wpe = r(V, d), r(n_ctx, d)
        w.W_U = w.wte.T.copy()
    if n is not None and n_ctx is None:
        w.tokens = rng.integers(0, V, n)
        w.embeddings = r(n, d)
    return w.validate()


def assert_same(a: GPT2Weights, b: GPT2Weights, *, attrs: tuple[str, ...] = ()) -> None:
    """Bit-exact equality of every array (sign of zero included), dims and scalar settings."""
    fa, fb = a.array_fields(), b.array_fields()
    assert set(fa) == set(fb), (sorted(fa), sorted(fb))
    for name, x in fa.items():
        y = fb[name]
        assert x.dtype == y.dtype and x.shape == y.shape, (name, x.dtype, y.dtype)
        if x.dtype == np.float64:
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), name
        else:
            assert np.array_equal(x, y), name
    assert a.eps == b.eps and a.gelu_kind == b.gelu_kind
    for key in attrs:
        assert a.attrs.get(key) == b.attrs.get(key), (key, a.attrs.get(key), b.attrs.get(key))


def tiny_hf_model(seed: int = 0):
    """A GPT2LMHeadModel (L=2, H=2, d=8, dff=12, V=11, ctx=16) with every parameter perturbed,
    so biases and LayerNorm parameters are not their trivial initial values."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=8, n_inner=12, vocab_size=11, n_positions=16,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def state_dict64(model) -> dict[str, np.ndarray]:
    """The model's parameters as float64 numpy arrays, by name."""
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items()}


def files_in(folder: Path) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}

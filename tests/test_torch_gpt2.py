"""torch_gpt2 forward == transformers.GPT2LMHeadModel in float64, and its conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nfp_steps.model import GPT2Weights, ModelError
from nfp_steps.torch_gpt2 import (
    TorchParams,
    forward,
    run_with_cache,
    torch_params_to_weights,
    weights_to_torch_params,
)

transformers = pytest.importorskip("transformers")


def hf_model(seed: int, L: int, H: int, d: int, V: int, n_ctx: int, act: str, n_inner=None):
    """A tiny random float64 GPT2LMHeadModel with non-trivial biases and LayerNorm params."""
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(
        vocab_size=V, n_positions=n_ctx, n_embd=d, n_layer=L, n_head=H, n_inner=n_inner,
        activation_function=act, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, bos_token_id=None, eos_token_id=None,
        attn_implementation="eager",
    )
    m = transformers.GPT2LMHeadModel(cfg).to(torch.float64).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
            elif "ln" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.4 * torch.randn_like(p))
    return m


def hf_to_weights(m) -> GPT2Weights:
    """Independent HF → per-head conversion (Conv1D weights are (in, out), row-vector)."""
    c = m.config
    L, H, d = c.n_layer, c.n_head, c.n_embd
    dh = d // H
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in m.state_dict().items()}
    t = "transformer."

    def heads_cols(w):  # (d, d) columns grouped by head -> (H, d, dh)
        return np.stack([w[:, h * dh:(h + 1) * dh] for h in range(H)])

    out: dict[str, list] = {k: [] for k in (
        "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O", "ln1_g", "ln1_b", "ln2_g",
        "ln2_b", "W_in", "b_in", "W_out", "b_out")}
    for layer in range(L):
        p = f"{t}h.{layer}."
        Wa, ba = sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"]
        for i, (wn, bn) in enumerate((("W_Q", "b_Q"), ("W_K", "b_K"), ("W_V", "b_V"))):
            out[wn].append(heads_cols(Wa[:, i * d:(i + 1) * d]))
            out[bn].append(ba[i * d:(i + 1) * d].reshape(H, dh))
        Wp = sd[p + "attn.c_proj.weight"]
        out["W_O"].append(np.stack([Wp[h * dh:(h + 1) * dh, :] for h in range(H)]))
        out["b_O"].append(sd[p + "attn.c_proj.bias"])
        out["ln1_g"].append(sd[p + "ln_1.weight"])
        out["ln1_b"].append(sd[p + "ln_1.bias"])
        out["ln2_g"].append(sd[p + "ln_2.weight"])
        out["ln2_b"].append(sd[p + "ln_2.bias"])
        out["W_in"].append(sd[p + "mlp.c_fc.weight"])
        out["b_in"].append(sd[p + "mlp.c_fc.bias"])
        out["W_out"].append(sd[p + "mlp.c_proj.weight"])
        out["b_out"].append(sd[p + "mlp.c_proj.bias"])
    arrays = {k: np.ascontiguousarray(np.stack(v)) for k, v in out.items()}
    wte = sd[t + "wte.weight"]
    return GPT2Weights(
        **arrays, lnf_g=sd[t + "ln_f.weight"], lnf_b=sd[t + "ln_f.bias"],
        W_U=np.ascontiguousarray(sd["lm_head.weight"].T), wte=wte, wpe=sd[t + "wpe.weight"],
        eps=c.layer_norm_epsilon, gelu_kind="exact" if c.activation_function == "gelu" else "tanh",
    ).validate()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(
    "seed,L,H,d,V,n_ctx,act,n_inner",
    [
        (0, 2, 4, 16, 23, 12, "gelu_new", None),
        (1, 3, 2, 8, 11, 9, "gelu", 20),
        (2, 1, 1, 4, 7, 5, "gelu_new", 3),
    ],
)
def test_matches_transformers_float64(seed, L, H, d, V, n_ctx, act, n_inner):
    m = hf_model(seed, L, H, d, V, n_ctx, act, n_inner)
    w = hf_to_weights(m)
    params = weights_to_torch_params(w)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, V, size=(3, n_ctx))
    with torch.no_grad():
        ref = m(torch.tensor(tokens), output_attentions=True, output_hidden_states=True)
        out = forward(params, tokens)
        cache = run_with_cache(params, tokens)
    assert out.logits.dtype == torch.float64
    assert rel_err(out.logits, ref.logits) <= 1e-10
    assert out.attn.shape == (3, L, H, n_ctx, n_ctx)
    for layer in range(L):
        assert rel_err(out.attn[:, layer], ref.attentions[layer]) <= 1e-10
        assert rel_err(cache["x"][:, layer], ref.hidden_states[layer]) <= 1e-10
    # HF applies ln_f to its last hidden state; our x_L is before ln_f
    assert torch.equal(cache["logits"], out.logits)
    assert torch.equal(cache["attn"], out.attn)
    # causal: no attention to the future, rows sum to one
    assert float(torch.triu(out.attn, diagonal=1).abs().max()) == 0.0
    assert torch.allclose(out.attn.sum(-1), torch.ones((), dtype=torch.float64))
    # unbatched tokens give the first row of the batch
    single = forward(params, tokens[0])
    assert rel_err(single.logits, out.logits[0]) < 1e-14


def test_tied_params_roundtrip_and_gelu_kind():
    m = hf_model(3, 2, 2, 8, 13, 6, "gelu_new")
    w = hf_to_weights(m)
    tied = weights_to_torch_params(w, tie_unembedding=True)
    assert "W_U" not in tied and isinstance(tied, TorchParams)
    tokens = np.arange(6) % 13
    with torch.no_grad():
        a = forward(tied, tokens).logits
        b = forward(weights_to_torch_params(w), tokens).logits
        c = forward(tied, tokens, gelu_kind="exact").logits
    assert rel_err(a, b) <= 1e-12
    assert rel_err(c, b) > 1e-6  # the setting reaches the MLP
    back = torch_params_to_weights(tied)
    for name, arr in w.array_fields().items():
        np.testing.assert_array_equal(getattr(back, name), arr, err_msg=name)
    assert back.eps == w.eps and back.gelu_kind == w.gelu_kind


def test_ablation_and_freeze_mlp_match_manual_reference():
    m = hf_model(4, 2, 2, 8, 13, 6, "gelu_new")
    w = hf_to_weights(m)
    tokens = np.array([[1, 2, 3, 1, 2, 3]])
    # zero-ablating head (1,0) == setting its W_O block to zero
    w2 = hf_to_weights(m)
    w2.W_O[1, 0] = 0.0
    # freezing MLPs == zeroing W_out and b_out
    w3 = hf_to_weights(m)
    w3.W_out[:] = 0.0
    w3.b_out[:] = 0.0
    with torch.no_grad():
        p = weights_to_torch_params(w)
        abl = forward(p, tokens, ablate_heads=[(1, 0)]).logits
        ref = forward(weights_to_torch_params(w2), tokens).logits
        frz = forward(p, tokens, freeze_mlp=True).logits
        ref3 = forward(weights_to_torch_params(w3), tokens).logits
        plain = forward(p, tokens).logits
    assert rel_err(abl, ref) <= 1e-12
    assert rel_err(frz, ref3) <= 1e-12
    assert rel_err(abl, plain) > 1e-6 and rel_err(frz, plain) > 1e-6


def test_differentiable_wrt_embeddings():
    m = hf_model(5, 1, 2, 4, 7, 4, "gelu_new")
    p = weights_to_torch_params(hf_to_weights(m))
    x0 = (p["wte"][torch.tensor([1, 2, 1, 3])] + p["wpe"]).clone()
    J = torch.autograd.functional.jacobian(lambda x: forward(p, embeddings=x).logits[-1], x0)
    # finite-difference check of one column
    h = 1e-6
    e = torch.zeros_like(x0)
    e[2, 1] = h
    plus, minus = forward(p, embeddings=x0 + e).logits, forward(p, embeddings=x0 - e).logits
    fd = (plus[-1] - minus[-1]) / (2 * h)
    assert torch.allclose(J[:, 2, 1], fd, rtol=1e-6, atol=1e-8)


def test_bad_inputs_raise_model_error():
    m = hf_model(6, 1, 2, 4, 7, 4, "gelu_new")
    p = weights_to_torch_params(hf_to_weights(m))
    with pytest.raises(ModelError, match="context"):
        forward(p, np.zeros(5, dtype=np.int64))
    with pytest.raises(ModelError, match="token ids"):
        forward(p, np.array([0, 7]))
    with pytest.raises(ModelError, match="integers"):
        forward(p, np.array([0.0, 1.0]))
    with pytest.raises(ModelError, match="out of range"):
        forward(p, np.array([0, 1]), ablate_heads=[(1, 0)])
    with pytest.raises(ModelError, match="gelu_kind"):
        forward(p, np.array([0, 1]), gelu_kind="relu")

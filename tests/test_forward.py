"""The numpy forward pass (the bounds' concrete point) equals transformers' GPT-2 in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_torch_gpt2 import hf_model, hf_to_weights

from nfp_steps.forward import embed, run_forward
from nfp_steps.model import ModelError

pytest.importorskip("transformers")


def rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize(
    "seed,L,H,d,V,n_ctx,act,n_inner",
    [
        (10, 2, 4, 16, 23, 12, "gelu_new", None),
        (11, 3, 2, 8, 11, 9, "gelu", 20),
        (12, 1, 1, 4, 7, 5, "gelu_new", 3),
        (13, 2, 3, 12, 17, 10, "gelu_new", 7),
    ],
)
def test_hidden_states_and_logits_match_transformers(seed, L, H, d, V, n_ctx, act, n_inner):
    m = hf_model(seed, L, H, d, V, n_ctx, act, n_inner)
    w = hf_to_weights(m)
    tokens = np.random.default_rng(seed).integers(0, V, size=n_ctx)
    with torch.no_grad():
        ref = m(torch.tensor(tokens[None]), output_attentions=True, output_hidden_states=True)
    t = run_forward(w, tokens)
    assert rel(t.logits, ref.logits[0].numpy()) <= 1e-10
    for layer in range(L):
        assert rel(t.x[layer], ref.hidden_states[layer][0].numpy()) <= 1e-10
        assert rel(t.attn[layer], ref.attentions[layer][0].numpy()) <= 1e-10
    # HF's last hidden state is ln_f(x_L)
    assert rel(t.final, ref.hidden_states[L][0].numpy()) <= 1e-10
    assert np.all(np.triu(t.attn, 1) == 0.0)


def test_embed_rejects_bad_prompts():
    w = hf_to_weights(hf_model(14, 1, 2, 4, 7, 4, "gelu_new"))
    with pytest.raises(ModelError, match="context length"):
        embed(w, np.zeros(5, dtype=np.int64))
    with pytest.raises(ModelError, match="outside the vocabulary"):
        embed(w, np.array([0, 7]))
    w.wte = w.wpe = None
    with pytest.raises(ModelError, match="neither"):
        embed(w, np.array([0, 1]))


def test_baked_embeddings_refuse_other_tokens():
    w = hf_to_weights(hf_model(15, 1, 2, 4, 7, 4, "gelu_new"))
    toks = np.array([1, 2, 3])
    w.embeddings = embed(w, toks)
    w.tokens = toks
    w.wte = w.wpe = None
    np.testing.assert_array_equal(embed(w, toks), w.embeddings)
    with pytest.raises(ModelError, match="TOKENS"):
        embed(w, np.array([1, 2, 4]))

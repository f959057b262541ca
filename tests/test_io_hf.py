"""Hugging Face folders: exact reading (safetensors, pytorch_model.bin, half precisions), the
per-head split, strict config/tensor checks, and writing that transformers loads back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from io_helpers import assert_same, random_weights, state_dict64, tiny_hf_model

from nfp_steps.io.hf import read_hf_folder, write_hf_folder
from nfp_steps.io.loader import load_model
from nfp_steps.io.zarr_store import read_weights_zarr, write_weights_zarr
from nfp_steps.model import ModelError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model():
    return tiny_hf_model(seed=1)


@pytest.fixture(scope="module")
def st_folder(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "st"
    model.save_pretrained(path)
    return path


def _check_against(w, sd: dict[str, np.ndarray]) -> None:
    """Every parameter of the HF state dict is reproduced exactly, in the per-head layout."""
    d, H, dh = 8, 2, 4
    assert np.array_equal(w.wte, sd["transformer.wte.weight"])
    assert np.array_equal(w.wpe, sd["transformer.wpe.weight"])
    assert np.array_equal(w.W_U, sd["transformer.wte.weight"].T)  # tied
    assert np.array_equal(w.lnf_g, sd["transformer.ln_f.weight"])
    assert np.array_equal(w.lnf_b, sd["transformer.ln_f.bias"])
    for layer in range(2):
        p = f"transformer.h.{layer}."
        ca, cb = sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"]
        for h in range(H):
            cols = slice(h * dh, (h + 1) * dh)
            assert np.array_equal(w.W_Q[layer, h], ca[:, cols])
            assert np.array_equal(w.W_K[layer, h], ca[:, d:][:, cols])
            assert np.array_equal(w.W_V[layer, h], ca[:, 2 * d:][:, cols])
            assert np.array_equal(w.b_Q[layer, h], cb[cols])
            assert np.array_equal(w.b_K[layer, h], cb[d:][cols])
            assert np.array_equal(w.b_V[layer, h], cb[2 * d:][cols])
            assert np.array_equal(w.W_O[layer, h], sd[p + "attn.c_proj.weight"][cols])
        for name, key in (("b_O", "attn.c_proj.bias"), ("ln1_g", "ln_1.weight"),
                          ("ln1_b", "ln_1.bias"), ("ln2_g", "ln_2.weight"), ("ln2_b", "ln_2.bias"),
                          ("W_in", "mlp.c_fc.weight"), ("b_in", "mlp.c_fc.bias"),
                          ("W_out", "mlp.c_proj.weight"), ("b_out", "mlp.c_proj.bias")):
            assert np.array_equal(getattr(w, name)[layer], sd[p + key]), name


def test_safetensors_folder_reproduces_every_parameter(model, st_folder):
    w = load_model(st_folder)
    _check_against(w, state_dict64(model))
    assert (w.eps, w.gelu_kind, w.d_mlp) == (1e-5, "tanh", 12)
    assert w.attrs["number_origin"] == "float32" and w.attrs["source_format"] == "hf"
    assert w.attrs["tied_unembedding"] is True and len(w.attrs["source_sha256"]) == 64
    assert not (w.b_Q == 0).all() and not (w.ln1_g == 1).all()  # perturbed, really read


def test_save_pretrained_unsafe_serialization(model, tmp_path):
    """``save_pretrained(safe_serialization=False)``: pytorch_model.bin where transformers still
    writes it (recent versions write safetensors regardless); either file reads exactly."""
    model.save_pretrained(tmp_path, safe_serialization=False)
    w = read_hf_folder(tmp_path)
    assert w.attrs["weight_file"] in ("pytorch_model.bin", "model.safetensors")
    _check_against(w, state_dict64(model))


def test_pytorch_bin_folder_without_prefix(model, st_folder, tmp_path):
    """``pytorch_model.bin`` (torch.save of a state dict, what safe_serialization=False wrote)
    with ``GPT2Model`` names (no ``transformer.`` prefix) and the attn.bias buffers."""
    sd = {k.removeprefix("transformer."): v.clone() for k, v in model.state_dict().items()
          if k != "lm_head.weight"}
    sd["h.0.attn.bias"] = torch.tril(torch.ones(16, 16)).view(1, 1, 16, 16)
    sd["h.1.attn.masked_bias"] = torch.tensor(-1e4)
    (tmp_path / "config.json").write_text((st_folder / "config.json").read_text())
    torch.save(sd, tmp_path / "pytorch_model.bin")
    w = read_hf_folder(tmp_path)
    _check_against(w, state_dict64(model))
    assert w.attrs["weight_file"] == "pytorch_model.bin"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_upcast_exactly(model, tmp_path, dtype):
    half = tiny_hf_model(seed=1).to(getattr(torch, dtype))
    half.save_pretrained(tmp_path)
    w = read_hf_folder(tmp_path)
    assert w.attrs["number_origin"] == dtype
    _check_against(w, state_dict64(half))


def test_untied_lm_head_becomes_W_U(st_folder, tmp_path):
    m = tiny_hf_model(seed=2)
    m.config.tie_word_embeddings = False
    m.lm_head.weight = torch.nn.Parameter(torch.randn(11, 8))
    m.save_pretrained(tmp_path)
    w = read_hf_folder(tmp_path)
    assert np.array_equal(w.W_U, m.lm_head.weight.detach().double().numpy().T)
    assert w.attrs["tied_unembedding"] is False
    write_hf_folder(w, tmp_path / "out")
    assert_same(w, read_hf_folder(tmp_path / "out"))


def test_written_folder_loads_in_transformers_bit_exactly(model, st_folder, tmp_path):
    from transformers import GPT2LMHeadModel

    w = read_hf_folder(st_folder)
    write_hf_folder(w, tmp_path / "f64")
    m64 = GPT2LMHeadModel.from_pretrained(tmp_path / "f64", dtype=torch.float64)
    sd = state_dict64(model)
    for name, value in state_dict64(m64).items():
        assert np.array_equal(value, sd[name]), name
    write_hf_folder(w, tmp_path / "f32", dtype="float32")
    m32 = GPT2LMHeadModel.from_pretrained(tmp_path / "f32")
    assert m32.dtype == torch.float32
    x = torch.tensor([[1, 2, 3, 1, 2]])
    with torch.no_grad():
        assert torch.equal(m32(x).logits, model(x).logits)
    assert_same(w, read_hf_folder(tmp_path / "f32"))


def test_float32_output_refuses_inexact_values(st_folder, tmp_path):
    w = read_hf_folder(st_folder)
    w.b_in[1, 3] = 0.1
    with pytest.raises(ModelError, match=r"h\.1\.mlp\.c_fc\.bias value 0\.1 at \(3,\) is not "
                                         r"exactly a float32"):
        write_hf_folder(w, tmp_path / "out", dtype="float32")
    assert list(tmp_path.iterdir()) == []


def test_hf_zarr_hf_round_trip_is_bit_exact(st_folder, tmp_path):
    w = read_hf_folder(st_folder)
    write_weights_zarr(w, tmp_path / "w.zarr")
    z = read_weights_zarr(tmp_path / "w.zarr")
    write_hf_folder(z, tmp_path / "back")
    assert_same(w, read_hf_folder(tmp_path / "back"))
    assert_same(w, z, attrs=("number_origin", "tied_unembedding"))


def test_models_without_tables_cannot_be_written_as_hf(tmp_path):
    w = random_weights(0, d=4, H=2, dh=2)
    with pytest.raises(ModelError, match="no wte/wpe tables"):
        write_hf_folder(w, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _config_case(st_folder, tmp_path, **changes):
    cfg = json.loads((st_folder / "config.json").read_text())
    cfg.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes((st_folder / "model.safetensors").read_bytes())
    return tmp_path


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "llama"}, "model_type is 'llama'; only GPT-2"),
    ({"activation_function": "relu"}, "activation_function 'relu' is not supported"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=true"),
    ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn=true"),
    ({"scale_attn_weights": False}, "scale_attn_weights=false"),
    ({"n_embd": 7}, "n_embd 7 is not a multiple of n_head 2"),
    ({"n_layer": 3}, "missing tensor(s) h.2.ln_1.weight"),
    ({"n_layer": 1}, "unexpected tensor(s) h.1.attn.c_attn.bias"),
    ({"n_inner": 16}, "tensor h.0.mlp.c_fc.weight has shape (8, 12), expected (8, 16)"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer"),
])
def test_bad_configs_are_refused(st_folder, tmp_path, changes, message):
    with pytest.raises(ModelError) as err:
        read_hf_folder(_config_case(st_folder, tmp_path, **changes))
    assert message in str(err.value)


def test_n_inner_null_means_four_d(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=8, n_inner=None, vocab_size=11, n_positions=16,
                     activation_function="gelu", layer_norm_epsilon=1e-3, bos_token_id=0,
                     eos_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(tmp_path)
    w = read_hf_folder(tmp_path)
    assert (w.d_mlp, w.gelu_kind, w.eps) == (32, "exact", 1e-3)


def test_bad_tensor_files_are_refused(st_folder, tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.clone() for k, v in tiny_hf_model(seed=1).state_dict().items()
          if k != "lm_head.weight"}
    sd["transformer.h.0.ln_1.weight"] = torch.ones(9)
    save_file(sd, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((st_folder / "config.json").read_text())
    with pytest.raises(ModelError, match=r"tensor h\.0\.ln_1\.weight has shape \(9,\), expected "
                                         r"\(8,\)"):
        read_hf_folder(tmp_path)
    sd["transformer.h.0.ln_1.weight"] = torch.full((8,), float("nan"))
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(ModelError, match=r"h\.0\.ln_1\.weight has a non-finite value at index"):
        read_hf_folder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x0a\0\0\0\0\0\0\0{not json}")
    with pytest.raises(ModelError, match="bad safetensors header"):
        read_hf_folder(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no model.safetensors or pytorch_model.bin"):
        read_hf_folder(tmp_path)


def test_untied_config_without_lm_head_is_an_error(model, st_folder, tmp_path):
    import json
    import shutil

    dst = tmp_path / "untied"
    shutil.copytree(st_folder, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="tie_word_embeddings=false but the weights have no"):
        read_hf_folder(dst)

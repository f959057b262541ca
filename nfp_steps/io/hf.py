"""Hugging Face GPT-2 checkpoint folders: read (local only, never the network) and write.

Reading: ``config.json`` plus ``model.safetensors`` (parsed here with numpy, strictly) or
``pytorch_model.bin`` (``torch.load(weights_only=True)``). Tensor names may carry the
``transformer.`` prefix (``GPT2LMHeadModel``) or not (``GPT2Model``); the causal-mask buffers
``attn.bias``/``attn.masked_bias`` are ignored; any other unknown, missing or misshaped tensor is
a :class:`ModelError` naming it. float16/bfloat16/float32 values are upcast to float64 exactly.
``c_attn`` is split into per-head W_Q/W_K/W_V (columns ``h*dh:(h+1)*dh`` of each d-wide block) and
biases, ``attn.c_proj`` rows into per-head W_O, its bias is b_O. ``lm_head.weight`` (if present)
gives W_U = lm_head.T (equal to wte.T when tied), else W_U = wte.T.

Config: ``model_type`` must be ``gpt2``; ``n_inner`` null means 4*d; ``layer_norm_epsilon`` is eps;
``activation_function`` ``gelu_new`` (or ``gelu_pytorch_tanh``, the same tanh formula) -> tanh,
``gelu`` -> exact, anything else is refused, as are options that change the attention maths
(``scale_attn_by_inverse_layer_idx``, ``reorder_and_upcast_attn``, ``scale_attn_weights=false``,
``add_cross_attention``).

Writing: ``config.json`` + ``model.safetensors`` with the standard names, loadable by
``transformers.GPT2LMHeadModel.from_pretrained``; float64 by default (bit-exact round trip) or
float32 (only if every value is exactly a float32: never a silent rounding). A model without
wte/wpe (from ``.nfpt``) or with placeholder sections cannot be written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Callable

import numpy as np

from nfp_steps.model import GPT2Weights, ModelError

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}
_DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_ACT = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "exact"}
_IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# ---- safetensors (minimal strict reader) -----------------------------------------------------
def read_safetensors(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors of a safetensors file as float64 arrays, and each one's stored dtype name."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ModelError(f"{path}: too short for a safetensors file ({len(data)} bytes)")
    (hlen,) = struct.unpack("<Q", data[:8])
    if 8 + hlen > len(data):
        raise ModelError(f"{path}: safetensors header length {hlen} exceeds the file size")
    try:
        header = json.loads(data[8:8 + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: bad safetensors header: {exc}") from None
    base = 8 + hlen
    out, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info.get("dtype"))
        if dt is None:
            raise ModelError(f"{path}: tensor {name}: unsupported dtype {info.get('dtype')!r} "
                             f"(expected one of {', '.join(_ST_DTYPES)})")
        shape = tuple(int(s) for s in info["shape"])
        lo, hi = (int(x) for x in info["data_offsets"])
        size = np.dtype(dt).itemsize * int(np.prod(shape))
        if hi - lo != size or base + hi > len(data) or lo < 0:
            raise ModelError(f"{path}: tensor {name}: data offsets {lo}..{hi} do not fit its "
                             f"shape {shape} and the file size")
        raw = np.frombuffer(data, dt, int(np.prod(shape)), base + lo)
        if info["dtype"] == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            arr = raw.astype(np.float64)
        out[name] = arr.reshape(shape)
        dtypes[name] = _DTYPE_NAMES[info["dtype"]]
    return out, dtypes


def _read_torch_bin(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import torch

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle
        raise ModelError(f"{path}: cannot load as a weights-only torch file: {exc}") from None
    if not isinstance(sd, dict):
        raise ModelError(f"{path}: expected a state dict, found {type(sd).__name__}")
    out, dtypes = {}, {}
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ModelError(f"{path}: entry {name!r} is not a floating-point tensor")
        out[name] = t.detach().to(torch.float64).numpy().copy()
        dtypes[name] = str(t.dtype).removeprefix("torch.")
    return out, dtypes


# ---- reading ---------------------------------------------------------------------------------
def _config(folder: str) -> dict:
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise ModelError(f"{folder}: no config.json (not a Hugging Face model folder)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{path}: expected a JSON object")
    if cfg.get("model_type") != "gpt2":
        raise ModelError(f"{path}: model_type is {cfg.get('model_type')!r}; only GPT-2 "
                         f"('gpt2') checkpoints are supported")
    bad = []
    if cfg.get("scale_attn_by_inverse_layer_idx"):
        bad.append("scale_attn_by_inverse_layer_idx=true")
    if cfg.get("reorder_and_upcast_attn"):
        bad.append("reorder_and_upcast_attn=true")
    if cfg.get("scale_attn_weights") is False:
        bad.append("scale_attn_weights=false")
    if cfg.get("add_cross_attention"):
        bad.append("add_cross_attention=true")
    if bad:
        raise ModelError(f"{path}: unsupported GPT-2 option(s) {', '.join(bad)} (NFP analyses "
                         f"standard GPT-2 attention)")
    for key in ("n_embd", "n_layer", "n_head", "vocab_size", "n_positions"):
        v = cfg.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ModelError(f"{path}: {key} must be a positive integer, found {v!r}")
    if cfg["n_embd"] % cfg["n_head"]:
        raise ModelError(f"{path}: n_embd {cfg['n_embd']} is not a multiple of n_head "
                         f"{cfg['n_head']}")
    inner = cfg.get("n_inner")
    if inner is not None and (not isinstance(inner, int) or inner <= 0):
        raise ModelError(f"{path}: n_inner must be null or a positive integer, found {inner!r}")
    act = cfg.get("activation_function", "gelu_new")
    if act not in _ACT:
        raise ModelError(f"{path}: activation_function {act!r} is not supported (accepted: "
                         f"{', '.join(_ACT)})")
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, int | float) or not (np.isfinite(eps) and eps > 0):
        raise ModelError(f"{path}: layer_norm_epsilon must be a positive number, found {eps!r}")
    return cfg


def weight_file(folder: str) -> str:
    """The checkpoint file the reader uses (safetensors preferred)."""
    for name in WEIGHT_FILES:
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    raise ModelError(f"{folder}: no {' or '.join(WEIGHT_FILES)} (sharded checkpoints are not "
                     f"supported)")


def read_hf_folder(path: str | os.PathLike) -> GPT2Weights:
    """Read a local GPT-2 checkpoint folder into float64 :class:`GPT2Weights` (module doc)."""
    folder = os.fspath(path)
    cfg = _config(folder)
    wf = weight_file(folder)
    if wf.endswith(".safetensors"):
        raw, dtypes = read_safetensors(wf)
    else:
        raw, dtypes = _read_torch_bin(wf)
    sd: dict[str, np.ndarray] = {}
    for name, arr in raw.items():
        short = name.removeprefix("transformer.")
        if _IGNORED.fullmatch(short):
            continue
        if short in sd:
            raise ModelError(f"{wf}: tensor {short} appears twice (with and without the "
                             f"'transformer.' prefix)")
        sd[short] = arr
    L, H, d, V, P = (cfg[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions"))
    dff = cfg.get("n_inner") or 4 * d
    dh = d // H
    shapes = {"wte.weight": (V, d), "wpe.weight": (P, d), "ln_f.weight": (d,),
              "ln_f.bias": (d,)}
    for i in range(L):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
            p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
            p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
            p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
            p + "mlp.c_fc.weight": (d, dff), p + "mlp.c_fc.bias": (dff,),
            p + "mlp.c_proj.weight": (dff, d), p + "mlp.c_proj.bias": (d,),
        })
    optional = {"lm_head.weight": (V, d)}
    missing = [k for k in shapes if k not in sd]
    if missing:
        raise ModelError(f"{wf}: missing tensor(s) {', '.join(missing[:8])}"
                         f"{' ...' if len(missing) > 8 else ''}")
    extra = [k for k in sd if k not in shapes and k not in optional]
    if extra:
        raise ModelError(f"{wf}: unexpected tensor(s) {', '.join(sorted(extra)[:8])} (not part "
                         f"of a GPT-2 model with n_layer={L})")
    for k, shape in {**shapes, **optional}.items():
        if k in sd and sd[k].shape != shape:
            raise ModelError(f"{wf}: tensor {k} has shape {sd[k].shape}, expected {shape}")
        if k in sd and not np.isfinite(sd[k]).all():
            idx = tuple(int(j) for j in np.argwhere(~np.isfinite(sd[k]))[0])
            raise ModelError(f"{wf}: tensor {k} has a non-finite value at index {idx}")

    def stack(fmt: str) -> np.ndarray:
        return np.stack([sd[fmt.format(i)] for i in range(L)])

    c_attn = stack("h.{}.attn.c_attn.weight")  # (L, d, 3d)
    c_bias = stack("h.{}.attn.c_attn.bias")  # (L, 3d)

    def heads_w(block: int) -> np.ndarray:  # -> (L, H, d, dh)
        return c_attn[:, :, block * d:(block + 1) * d].reshape(L, d, H, dh).transpose(0, 2, 1, 3)

    def heads_b(block: int) -> np.ndarray:
        return c_bias[:, block * d:(block + 1) * d].reshape(L, H, dh)

    lm = sd.get("lm_head.weight")
    if lm is None and cfg.get("tie_word_embeddings", True) is False:
        raise ModelError(f"{folder}: config.json says tie_word_embeddings=false but the weights "
                         f"have no lm_head.weight (transformers would initialise it randomly)")
    tied = lm is None or np.array_equal(lm, sd["wte.weight"])
    kinds = sorted(set(dtypes.values()))
    eps_given = "layer_norm_epsilon" in cfg
    w = GPT2Weights(
        W_Q=np.ascontiguousarray(heads_w(0)), b_Q=heads_b(0).copy(),
        W_K=np.ascontiguousarray(heads_w(1)), b_K=heads_b(1).copy(),
        W_V=np.ascontiguousarray(heads_w(2)), b_V=heads_b(2).copy(),
        W_O=stack("h.{}.attn.c_proj.weight").reshape(L, H, dh, d),
        b_O=stack("h.{}.attn.c_proj.bias"),
        ln1_g=stack("h.{}.ln_1.weight"), ln1_b=stack("h.{}.ln_1.bias"),
        ln2_g=stack("h.{}.ln_2.weight"), ln2_b=stack("h.{}.ln_2.bias"),
        W_in=stack("h.{}.mlp.c_fc.weight"), b_in=stack("h.{}.mlp.c_fc.bias"),
        W_out=stack("h.{}.mlp.c_proj.weight"), b_out=stack("h.{}.mlp.c_proj.bias"),
        lnf_g=sd["ln_f.weight"].copy(), lnf_b=sd["ln_f.bias"].copy(),
        W_U=np.ascontiguousarray((sd["wte.weight"] if lm is None else lm).T),
        eps=float(cfg.get("layer_norm_epsilon", 1e-5)),
        gelu_kind=_ACT[cfg.get("activation_function", "gelu_new")],
        wte=sd["wte.weight"].copy(), wpe=sd["wpe.weight"].copy(),
        attrs={
            "source_path": os.path.abspath(folder),
            "source_format": "hf",
            "weight_file": os.path.basename(wf),
            "number_origin": kinds[0] if len(kinds) == 1 else "mixed:" + ",".join(kinds),
            "missing_sections": [],
            "tied_unembedding": bool(tied),
            "header_defaults": [] if eps_given else ["layer_norm_eps"],
        },
    )
    return w.validate(folder)


# ---- writing ---------------------------------------------------------------------------------
def hf_config(w: GPT2Weights, tied: bool, dtype: str) -> dict:
    """A ``GPT2Config`` dict describing ``w``."""
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": w.vocab_size,
        "n_positions": int(w.wpe.shape[0]),
        "n_embd": w.d_model,
        "n_layer": w.n_layers,
        "n_head": w.n_heads,
        "n_inner": w.d_mlp,
        "activation_function": "gelu_new" if w.gelu_kind == "tanh" else "gelu",
        "layer_norm_epsilon": float(w.eps),
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": tied,
        "bos_token_id": None,
        "eos_token_id": None,
        "dtype": dtype,
    }


def hf_state_dict(w: GPT2Weights) -> tuple[dict[str, np.ndarray], bool]:
    """float64 tensors under the standard ``GPT2LMHeadModel`` names; and whether W_U is tied."""
    L, H, d, dh = w.n_layers, w.n_heads, w.d_model, w.d_head
    out = {"transformer.wte.weight": w.wte, "transformer.wpe.weight": w.wpe,
           "transformer.ln_f.weight": w.lnf_g, "transformer.ln_f.bias": w.lnf_b}

    def cols(W: np.ndarray) -> np.ndarray:  # (H, d, dh) -> (d, H*dh)
        return W.transpose(1, 0, 2).reshape(d, H * dh)

    for i in range(L):
        p = f"transformer.h.{i}."
        out.update({
            p + "ln_1.weight": w.ln1_g[i], p + "ln_1.bias": w.ln1_b[i],
            p + "attn.c_attn.weight": np.concatenate(
                [cols(w.W_Q[i]), cols(w.W_K[i]), cols(w.W_V[i])], axis=1),
            p + "attn.c_attn.bias": np.concatenate(
                [w.b_Q[i].reshape(-1), w.b_K[i].reshape(-1), w.b_V[i].reshape(-1)]),
            p + "attn.c_proj.weight": w.W_O[i].reshape(H * dh, d),
            p + "attn.c_proj.bias": w.b_O[i],
            p + "ln_2.weight": w.ln2_g[i], p + "ln_2.bias": w.ln2_b[i],
            p + "mlp.c_fc.weight": w.W_in[i], p + "mlp.c_fc.bias": w.b_in[i],
            p + "mlp.c_proj.weight": w.W_out[i], p + "mlp.c_proj.bias": w.b_out[i],
        })
    tied = bool(np.array_equal(w.W_U, w.wte.T))
    if not tied:
        out["lm_head.weight"] = w.W_U.T
    return out, tied


def _check_hf_writable(w: GPT2Weights) -> None:
    if w.wte is None or w.wpe is None:
        raise ModelError(
            "cannot write a Hugging Face folder: the model has no wte/wpe tables (an .nfpt "
            "file stores only one baked prompt's embeddings), so GPT-2 could not embed tokens")
    gone = [s for s in w.attrs.get("missing_sections", []) if s != "EMBEDDINGS"]
    if gone:
        raise ModelError(f"cannot write a Hugging Face folder: section(s) {', '.join(gone)} are "
                         f"missing from the source (placeholders are not weights)")
    if w.d_model != w.n_heads * w.d_head:
        raise ModelError(f"cannot write a Hugging Face folder: GPT-2 needs model_dim = "
                         f"num_heads * head_dim, got {w.d_model} != {w.n_heads}*{w.d_head}")


def write_hf_folder(
    w: GPT2Weights,
    path: str | os.PathLike,
    dtype: str = "float64",
    extra_files: Callable[[str], dict[str, str]] | None = None,
) -> None:
    """Write ``config.json`` + ``model.safetensors`` into ``path`` (temp folder + rename).

    ``dtype="float32"`` is accepted only when every value is exactly a float32. An existing
    ``path`` is replaced only if it is a Hugging Face folder (has ``config.json``).
    ``extra_files`` maps the sha256 of the written model.safetensors to more text files
    (name -> content) that go into the same folder before it is moved into place.
    """
    from safetensors.numpy import save_file

    if dtype not in ("float32", "float64"):
        raise ModelError(f"dtype must be float32 or float64, got {dtype!r}")
    w.validate("model to write")
    _check_hf_writable(w)
    tensors, tied = hf_state_dict(w)
    np_dtype = np.float32 if dtype == "float32" else np.float64
    for name, arr in tensors.items():
        cast = np.ascontiguousarray(arr, dtype=np_dtype)
        if dtype == "float32" and not np.array_equal(cast.astype(np.float64), arr):
            idx = tuple(int(j) for j in np.argwhere(cast.astype(np.float64) != arr)[0])
            raise ModelError(f"tensor {name} value {float(arr[idx])!r} at {idx} is not exactly a "
                             f"float32: write with dtype float64 (no silent rounding)")
        tensors[name] = cast
    dest = os.path.abspath(os.fspath(path))
    if os.path.exists(dest) and not (os.path.isdir(dest) and
                                     os.path.isfile(os.path.join(dest, "config.json"))):
        raise ModelError(f"{dest} exists and is not a Hugging Face model folder: refusing to "
                         f"overwrite it")
    tmp = f"{dest}.tmp-{os.getpid()}"
    try:
        os.makedirs(tmp)
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        # safetensors creates the file 0600; give it the usual umask-based mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(os.path.join(tmp, "model.safetensors"), 0o666 & ~umask)
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(hf_config(w, tied, dtype), f, indent=2)
            f.write("\n")
        if extra_files is not None:
            with open(os.path.join(tmp, "model.safetensors"), "rb") as f:
                sha = hashlib.file_digest(f, "sha256").hexdigest()
            for name, text in extra_files(sha).items():
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                    f.write(text)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: str, dest: str) -> None:
    """Move the finished folder ``tmp`` to ``dest``, replacing an old ``dest`` folder."""
    if os.path.exists(dest):
        old = f"{dest}.old-{os.getpid()}"
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)

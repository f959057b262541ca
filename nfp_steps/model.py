"""The in-memory GPT-2 weight set every other module works on.

One dataclass, float64 numpy arrays in the row-vector convention (``y = x @ W``), per-head
slices laid out as in the original's ``.nfpt`` files. Readers (HF folder, ``.nfpt`` text or
binary, Zarr store) all produce a :class:`GPT2Weights`; writers all consume one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

GELU_KINDS = ("tanh", "exact")


class ModelError(ValueError):
    """A model file or weight set is malformed; the message names what and where."""


@dataclass
class GPT2Weights:
    """All parameters of a GPT-2-architecture model (float64, exact copies of the stored values).

    Shapes (L layers, H heads, d model dim, dh head dim, dff MLP dim, V vocab):
    W_Q/W_K/W_V (L,H,d,dh), b_Q/b_K/b_V (L,H,dh), W_O (L,H,dh,d), b_O (L,d),
    ln1_g/ln1_b/ln2_g/ln2_b (L,d), W_in (L,d,dff), b_in (L,dff), W_out (L,dff,d), b_out (L,d),
    lnf_g/lnf_b (d,), W_U (d,V).
    Optional: wte (V,d) and wpe (n_ctx,d) for models that embed tokens themselves (HF), or
    ``embeddings`` (n,d) baked for one prompt (``.nfpt``), with that prompt's ``tokens`` (n,).
    """

    W_Q: np.ndarray
    b_Q: np.ndarray
    W_K: np.ndarray
    b_K: np.ndarray
    W_V: np.ndarray
    b_V: np.ndarray
    W_O: np.ndarray
    b_O: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray
    W_in: np.ndarray
    b_in: np.ndarray
    W_out: np.ndarray
    b_out: np.ndarray
    lnf_g: np.ndarray
    lnf_b: np.ndarray
    W_U: np.ndarray
    eps: float = 1e-5
    gelu_kind: str = "tanh"
    wte: np.ndarray | None = None
    wpe: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    tokens: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    # ---- dimensions -------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return int(self.W_Q.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.W_Q.shape[1])

    @property
    def d_model(self) -> int:
        return int(self.W_Q.shape[2])

    @property
    def d_head(self) -> int:
        return int(self.W_Q.shape[3])

    @property
    def d_mlp(self) -> int:
        return int(self.W_in.shape[2])

    @property
    def vocab_size(self) -> int:
        return int(self.W_U.shape[1])

    @property
    def n_ctx(self) -> int | None:
        """Longest prompt the model can embed (``None``: only its baked prompt)."""
        if self.wpe is not None:
            return int(self.wpe.shape[0])
        return None

    def dims(self) -> dict[str, int]:
        """The header fields of the original's formats."""
        out = {
            "num_layers": self.n_layers,
            "num_heads": self.n_heads,
            "model_dim": self.d_model,
            "head_dim": self.d_head,
            "hidden_dim": self.d_mlp,
            "vocab_size": self.vocab_size,
        }
        if self.embeddings is not None:
            out["seq_len"] = int(self.embeddings.shape[0])
        elif self.wpe is not None:
            out["seq_len"] = int(self.wpe.shape[0])
        return out

    def array_fields(self) -> dict[str, np.ndarray]:
        """Every present array, by field name."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                out[f.name] = v
        return out

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        L, H, d, dh, dff, V = (
            self.n_layers,
            self.n_heads,
            self.d_model,
            self.d_head,
            self.d_mlp,
            self.vocab_size,
        )
        shapes = {
            "W_Q": (L, H, d, dh),
            "b_Q": (L, H, dh),
            "W_K": (L, H, d, dh),
            "b_K": (L, H, dh),
            "W_V": (L, H, d, dh),
            "b_V": (L, H, dh),
            "W_O": (L, H, dh, d),
            "b_O": (L, d),
            "ln1_g": (L, d),
            "ln1_b": (L, d),
            "ln2_g": (L, d),
            "ln2_b": (L, d),
            "W_in": (L, d, dff),
            "b_in": (L, dff),
            "W_out": (L, dff, d),
            "b_out": (L, d),
            "lnf_g": (d,),
            "lnf_b": (d,),
            "W_U": (d, V),
        }
        if self.wte is not None:
            shapes["wte"] = (V, d)
        if self.wpe is not None:
            shapes["wpe"] = (self.wpe.shape[0], d)
        if self.embeddings is not None:
            shapes["embeddings"] = (self.embeddings.shape[0], d)
        if self.tokens is not None:
            shapes["tokens"] = (self.tokens.shape[0],)
        return shapes

    def validate(self, where: str = "model") -> GPT2Weights:
        """Check shapes, dtypes, finiteness and the scalar settings; raise :class:`ModelError`."""
        if self.W_Q.ndim != 4:
            raise ModelError(
                f"{where}: W_Q must have 4 axes (L,H,d,dh), got shape {self.W_Q.shape}"
            )
        for name, dim in (
            ("num_layers", self.n_layers),
            ("num_heads", self.n_heads),
            ("model_dim", self.d_model),
            ("head_dim", self.d_head),
            ("hidden_dim", self.d_mlp),
            ("vocab_size", self.vocab_size),
        ):
            if dim <= 0:
                raise ModelError(f"{where}: {name} must be > 0, got {dim}")
        for name, shape in self.expected_shapes().items():
            arr = getattr(self, name)
            if tuple(arr.shape) != shape:
                raise ModelError(
                    f"{where}: {name} has shape {tuple(arr.shape)}, expected {shape}"
                )
            if name == "tokens":
                if not np.issubdtype(arr.dtype, np.integer):
                    raise ModelError(f"{where}: tokens must be integers, got {arr.dtype}")
                if arr.size and arr.min() < 0:
                    i = int(np.argmax(arr < 0))
                    raise ModelError(f"{where}: negative token id {int(arr[i])} at index {i}")
                if arr.size and arr.max() >= self.vocab_size:
                    i = int(np.argmax(arr >= self.vocab_size))
                    raise ModelError(
                        f"{where}: token id {int(arr[i])} at index {i} is >= vocab_size "
                        f"{self.vocab_size}"
                    )
                continue
            if arr.dtype != np.float64:
                raise ModelError(f"{where}: {name} must be float64, got {arr.dtype}")
            bad = ~np.isfinite(arr)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ModelError(
                    f"{where}: {name} has a non-finite value {arr[idx]!r} at index {idx}"
                )
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ModelError(
                f"{where}: layer_norm_eps must be a positive finite number, got {self.eps}"
            )
        if self.gelu_kind not in GELU_KINDS:
            raise ModelError(
                f"{where}: gelu_kind must be one of {GELU_KINDS}, got {self.gelu_kind!r}"
            )
        return self

"""The workflow's plots: one function per plot, arrays in, a matplotlib Figure out.

``save(fig, path)`` writes a figure as PNG or SVG (by the suffix); ``to_svg(fig)`` returns the SVG
text that the ``plots`` stage stores in ``results/<model>/plots/``. Figures are built with
``matplotlib.figure.Figure`` (no pyplot, no global state, no display: the Agg/SVG canvases), and
the SVG output is deterministic (fixed hash salt, no date), so an unchanged result gives
byte-identical files.

Non-finite values (a NaN heuristic, an infinite bound) are drawn as gaps, never as numbers.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Deterministic SVG: fixed ids, no creation date, text as paths (no font needed to view it).
_RC = {"svg.hashsalt": "nfp", "svg.fonttype": "path", "image.interpolation": "nearest"}
_META = {"svg": {"Date": None}, "png": {"Software": None}}
# Cells annotated with their value when the grid has at most this many cells.
_ANNOTATE_MAX = 64


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)  # never a display backend, even if pyplot gets imported
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a[np.isfinite(a)]


def _heatmap(ax: Any, values: np.ndarray, title: str, *, log: bool, vmin: float | None = None,
             vmax: float | None = None, fmt: str = "{:.2g}") -> Any:
    """A layer × head heatmap on ``ax`` with a colour bar; returns the image."""
    from matplotlib.colors import LogNorm, Normalize

    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"{title}: expected a (layer, head) array, got shape {values.shape}")
    finite = _finite(values)
    positive = finite[finite > 0]
    if log and positive.size:
        norm: Any = LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 1.0001))
        shown = np.where(values > 0, values, np.nan)
    else:
        lo = vmin if vmin is not None else (finite.min() if finite.size else 0.0)
        hi = vmax if vmax is not None else (finite.max() if finite.size else 1.0)
        norm = Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0)
        shown = values
    im = ax.imshow(np.ma.masked_invalid(shown), norm=norm, cmap="viridis", aspect="auto",
                   origin="upper")
    n_layers, n_heads = values.shape
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_title(title)
    if values.size <= _ANNOTATE_MAX:
        for (i, j), v in np.ndenumerate(values):
            text = fmt.format(v) if np.isfinite(v) else "n/a"
            rgba = im.cmap(norm(v)) if np.isfinite(shown[i, j]) else (1, 1, 1, 1)
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.figure.colorbar(im, ax=ax)
    return im


# ---- one function per plot --------------------------------------------------------------------
def layer_bounds(c_ub: Sequence[float], c_lb: Sequence[float], model: str = "") -> Any:
    """Per-layer bars: C_l (rigorous ub of ‖J_l − I‖₂) next to its certified lb, log scale."""
    ub, lb = np.asarray(c_ub, dtype=float), np.asarray(c_lb, dtype=float)
    if ub.shape != lb.shape or ub.ndim != 1:
        raise ValueError(f"layer_bounds: C_ub {ub.shape} and C_lb {lb.shape} must be equal 1-D")
    fig = _figure(max(4.0, 0.6 * ub.size + 2), 3.5)
    ax = fig.subplots()
    x = np.arange(ub.size)
    # a bar of height ≤ 0 or non-finite has no place on a log axis: leave a gap
    shown = [np.where(np.isfinite(v) & (v > 0), v, np.nan) for v in (ub, lb)]
    ax.bar(x - 0.2, shown[0], 0.4, label="ub (C_l)", color="tab:red")
    ax.bar(x + 0.2, shown[1], 0.4, label="lb (certified)", color="tab:blue")
    if (_finite(np.concatenate([ub, lb])) > 0).any():
        ax.set_yscale("log")
    ax.set_xticks(x, [str(i) for i in x])
    ax.set_xlabel("layer")
    ax.set_ylabel("‖J_l − I‖₂")
    ax.set_title(f"{model}: per-layer upper vs lower bound".lstrip(": "))
    ax.legend(loc="best", fontsize=8)
    return fig


def head_eps(eps_ub: np.ndarray, model: str = "") -> Any:
    """Heatmap of the per-head ε upper bound (pattern-term ub / value-term lb), log colour."""
    fig = _figure(*_grid_size(np.shape(eps_ub)))
    _heatmap(fig.subplots(), eps_ub, f"{model}: head ε (ub)".lstrip(": "), log=True)
    return fig


def prev_tok(prev: np.ndarray, model: str = "") -> Any:
    """Heatmap of the previous-token score per head (heuristic), 0 to 1."""
    fig = _figure(*_grid_size(np.shape(prev)))
    _heatmap(fig.subplots(), prev, f"{model}: prevTok (heuristic)".lstrip(": "), log=False,
             vmin=0.0, vmax=max(1.0, float(np.nanmax(_finite(prev), initial=0.0))),
             fmt="{:.2f}")
    return fig


def ind_score(ind: np.ndarray, model: str = "") -> Any:
    """Heatmap of the induction score per head (heuristic), 0 to 1."""
    fig = _figure(*_grid_size(np.shape(ind)))
    _heatmap(fig.subplots(), ind, f"{model}: indScore (heuristic)".lstrip(": "), log=False,
             vmin=0.0, vmax=max(1.0, float(np.nanmax(_finite(ind), initial=0.0))),
             fmt="{:.2f}")
    return fig


def top_pair_attention(attn1: np.ndarray | None, attn2: np.ndarray | None,
                       pair: tuple[int, int, int, int] | None,
                       tokens: Sequence[int] | None = None, model: str = "") -> Any:
    """The attention patterns (query × key) of the top pair's two heads on the prompt.

    ``pair`` is ``(l1, h1, l2, h2)``; ``None`` (no candidate pair) gives a figure saying so.
    Token ids label the axes when the prompt has at most 32 tokens.
    """
    fig = _figure(9.0, 4.2)
    if pair is None or attn1 is None or attn2 is None:
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no candidate pair passed the ranking filters", ha="center",
                va="center")
        return fig
    l1, h1, l2, h2 = pair
    axes = fig.subplots(1, 2)
    titles = (f"L{l1}H{h1} (previous-token head)", f"L{l2}H{h2} (induction head)")
    for ax, a, title in zip(axes, (attn1, attn2), titles, strict=True):
        a = np.asarray(a, dtype=float)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"top_pair_attention: {title}: expected a square (query, key) "
                             f"pattern, got shape {a.shape}")
        im = ax.imshow(np.ma.masked_invalid(a), cmap="Blues", vmin=0.0, vmax=1.0,
                       aspect="equal", origin="upper")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
        if tokens is not None and 0 < len(tokens) <= 32 and len(tokens) == a.shape[0]:
            labels = [str(int(t)) for t in tokens]
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="attention probability")
    fig.suptitle(f"{model}: attention of the top pair".lstrip(": "))
    return fig


def _grid_size(shape: tuple[int, ...]) -> tuple[float, float]:
    """Figure size for a (layer, head) heatmap: readable for 2×4 and for 48×25."""
    n_layers, n_heads = (tuple(shape) + (1, 1))[:2]
    return (min(14.0, 2.5 + 0.55 * n_heads), min(12.0, 1.8 + 0.45 * n_layers))


# ---- output ---------------------------------------------------------------------------------
def render(fig: Any, fmt: str) -> bytes:
    """The figure as ``svg`` or ``png`` bytes (deterministic, non-empty)."""
    import matplotlib

    if fmt not in ("svg", "png"):
        raise ValueError(f"plot format {fmt!r}: use svg or png")
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format=fmt, metadata=_META[fmt], dpi=100)
    return buf.getvalue()


def to_svg(fig: Any) -> str:
    """The figure as SVG text."""
    return render(fig, "svg").decode("utf-8")


def save(fig: Any, path: str | os.PathLike) -> Path:
    """Write the figure to ``path`` (``.svg`` or ``.png``, by the suffix); return the path."""
    path = Path(path)
    data = render(fig, path.suffix.lstrip(".").lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path

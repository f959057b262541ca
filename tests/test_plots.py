"""Plots: each function draws the stored arrays it is given and renders a non-empty image.

The arrays come from a small stored result: the shipped model's stages on a 16-token prompt,
written with write_stage and read back with read_stage (module-scoped, a few seconds).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from nfp_steps import plots as P
from nfp_steps.config import load_config
from nfp_steps.pipeline import run_in_memory
from nfp_steps.stage_specs import STAGES
from nfp_steps.stages.plots import run as plots_stage
from nfp_steps.stages.plots import top_pair
from nfp_steps.storage import read_stage, write_stage

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """{stage: Dataset} read back from stores written by the real stage functions."""
    model = REPO / "models" / "nfp-toy"
    if not model.is_dir():
        pytest.skip("the shipped model models/nfp-toy is missing")
    cfg = load_config({"models": {"nfp-toy": str(model)}, "prompt": {"seq_len": 16}})
    res = run_in_memory(cfg, "nfp-toy", until="ranking")
    folder = tmp_path_factory.mktemp("stored")
    for name in STAGES["plots"].inputs:
        write_stage(folder, name, res[name], {"model": "nfp-toy"})
    return {name: read_stage(folder, name) for name in STAGES["plots"].inputs}


def assert_images(fig, tmp_path: Path, name: str) -> None:
    """The figure saves as a non-empty PNG and a well-formed SVG."""
    png = P.save(fig, tmp_path / f"{name}.png")
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000, name
    svg = P.save(fig, tmp_path / f"{name}.svg").read_text()
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 20, name  # drawn elements, not an empty canvas


def test_layer_bounds_bars_are_the_stored_bounds_on_a_log_axis(stored, tmp_path):
    layers = stored["layers"]
    ub, lb = layers["C_ub"].values, layers["C_lb"].values
    fig = P.layer_bounds(ub, lb, "nfp-toy")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    ub_bars, lb_bars = ax.containers
    assert [b.get_height() for b in ub_bars] == pytest.approx(ub)
    assert [b.get_height() for b in lb_bars] == pytest.approx(lb)
    assert_images(fig, tmp_path, "layer_bounds")


def test_layer_bounds_leave_gaps_for_non_positive_values(tmp_path):
    fig = P.layer_bounds([10.0, np.inf, 5.0], [0.0, 2.0, np.nan])
    ub_bars, lb_bars = fig.axes[0].containers
    assert np.isnan(lb_bars[0].get_height()) and np.isnan(lb_bars[2].get_height())
    assert_images(fig, tmp_path, "gaps")
    with pytest.raises(ValueError, match="must be equal 1-D"):
        P.layer_bounds([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("func", "stage", "var"), [
    (P.head_eps, "heads", "eps_ub"),
    (P.prev_tok, "scores", "prevTok"),
    (P.ind_score, "scores", "indScore"),
])
def test_heatmaps_show_the_stored_layer_by_head_values(stored, tmp_path, func, stage, var):
    values = stored[stage][var].values
    assert values.shape == (2, 4)
    fig = func(values, "nfp-toy")
    image = fig.axes[0].get_images()[0]
    np.testing.assert_array_equal(np.ma.filled(image.get_array(), np.nan), values)
    assert_images(fig, tmp_path, var)


def test_heatmap_with_nan_and_a_wrong_shape(tmp_path):
    fig = P.ind_score(np.array([[np.nan, 0.5], [0.2, np.nan]]))
    assert np.ma.getmaskarray(fig.axes[0].get_images()[0].get_array()).sum() == 2
    assert_images(fig, tmp_path, "nan")
    with pytest.raises(ValueError, match=r"expected a \(layer, head\) array"):
        P.head_eps(np.ones(4))


def test_top_pair_attention_shows_both_heads_of_the_top_pair(stored, tmp_path):
    pair = top_pair(stored["ranking"])
    assert pair is not None
    l1, h1, l2, h2 = pair
    attn = stored["forward"]["attn"].values
    fig = P.top_pair_attention(attn[l1, h1], attn[l2, h2], pair,
                               stored["prompt"]["tokens"].values, "nfp-toy")
    left, right = (ax for ax in fig.axes if ax.get_images())
    np.testing.assert_array_equal(left.get_images()[0].get_array(), attn[l1, h1])
    np.testing.assert_array_equal(right.get_images()[0].get_array(), attn[l2, h2])
    assert left.get_title() == f"L{l1}H{h1} (previous-token head)"
    assert right.get_title() == f"L{l2}H{h2} (induction head)"
    assert_images(fig, tmp_path, "attention")


def test_top_pair_attention_without_a_pair_says_so(tmp_path):
    fig = P.top_pair_attention(None, None, None)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["no candidate pair passed the ranking filters"]
    assert_images(fig, tmp_path, "none")


def test_plots_stage_returns_every_declared_svg(stored):
    result = plots_stage(stored, {}, "nfp-toy")
    assert set(result.files) == set(STAGES["plots"].files)
    for name, text in result.files.items():
        assert ET.fromstring(text).tag.endswith("svg"), name
    assert list(result.dataset["top_pair"].values) == list(top_pair(stored["ranking"]))


def test_svg_is_deterministic(stored):
    """The same arrays give byte-identical SVG (no date, fixed ids): reruns change nothing."""
    eps = stored["heads"]["eps_ub"].values
    assert P.to_svg(P.head_eps(eps, "m")) == P.to_svg(P.head_eps(eps, "m"))
    assert P.to_svg(P.head_eps(eps, "m")) != P.to_svg(P.head_eps(eps * 2, "m"))


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="use svg or png"):
        P.render(P.top_pair_attention(None, None, None), "jpg")

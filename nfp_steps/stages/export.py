"""Stage "export": read the model source (HF folder, .nfpt, weights .zarr) into the weights
store."""

from __future__ import annotations

from nfp_steps.stage_specs import StageResult
from nfp_steps.stages.common import Inputs


def run(inputs: Inputs, cfg: dict, model: str) -> StageResult:
    """Read the model source named in ``models.<model>`` into the weights store."""
    from nfp_steps.io.loader import load_model
    from nfp_steps.io.zarr_store import weights_to_dataset

    src = cfg["models"][model]
    return StageResult(weights_to_dataset(load_model(src)), {})

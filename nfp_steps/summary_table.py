"""``results/summary.tsv``: the models of one run side by side, one row per model.

    python -m nfp_steps.summary_table --results results --output results/summary.tsv MODEL...

Per model: the top-ranked pair (or ``-`` when no pair passed the ranking filters), its heads'
prevTok (head 1) and indScore (head 2) (heuristic), their ε upper bounds, the layer with the
worst ub/lb slack, the total amplification bound ∏(1 + C_l) and the certificate's check status
(``check_status`` in the certificate store's attrs; "not checked" when absent). Every store is
read with its hashes verified, so a hand-edited result stops the table with the store named.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

COLUMNS = ("model", "top_pair", "l1", "h1", "l2", "h2", "prevTok", "indScore", "eps1_ub",
           "eps2_ub", "n_pairs", "worst_layer", "worst_slack", "worst_C_ub", "worst_C_lb",
           "total_ub", "certificate_status")
STAGES_READ = ("ranking", "scores", "heads", "layers", "certificate")
MISSING = "-"


def _num(value: float) -> str:
    """A float cell: ``repr`` (round-trips exactly), ``nan``/``inf`` spelled as Python does."""
    return repr(float(value))


def model_row(results: Path, model: str) -> dict[str, str]:
    """The summary row of one model, from its stores in ``results/<model>/``."""
    import numpy as np

    from nfp_steps.stages.plots import top_pair
    from nfp_steps.storage import read_stage

    folder = results / model
    ds = {name: read_stage(folder, name) for name in STAGES_READ}
    row = dict.fromkeys(COLUMNS, MISSING)
    row["model"] = model
    row["n_pairs"] = str(ds["ranking"].sizes.get("pair", 0))
    pair = top_pair(ds["ranking"])
    if pair is not None:
        l1, h1, l2, h2 = pair
        row.update(top_pair=f"L{l1}H{h1}->L{l2}H{h2}", l1=str(l1), h1=str(h1), l2=str(l2),
                   h2=str(h2),
                   prevTok=_num(ds["scores"]["prevTok"].values[l1, h1]),
                   indScore=_num(ds["scores"]["indScore"].values[l2, h2]),
                   eps1_ub=_num(ds["heads"]["eps_ub"].values[l1, h1]),
                   eps2_ub=_num(ds["heads"]["eps_ub"].values[l2, h2]))
    layers = ds["layers"]
    slack = np.asarray(layers["slack"].values, dtype=float)
    if slack.size:
        # a NaN/inf slack (no positive lower bound) is the worst of all
        worst = int(np.argmax(np.where(np.isnan(slack), np.inf, slack)))
        row.update(worst_layer=str(worst), worst_slack=_num(slack[worst]),
                   worst_C_ub=_num(layers["C_ub"].values[worst]),
                   worst_C_lb=_num(layers["C_lb"].values[worst]))
    cert = ds["certificate"]
    if "total_ub" in cert:
        row["total_ub"] = _num(cert["total_ub"].values)
    status = str(cert.attrs.get("check_status", "not checked"))
    row["certificate_status"] = " ".join(status.split())  # one line, no tabs
    return row


def summary_tsv(results: str | Path, models: Sequence[str]) -> str:
    """The whole table as TSV text (header first, models in the given order)."""
    rows = [model_row(Path(results), m) for m in models]
    lines = ["\t".join(COLUMNS)] + ["\t".join(r[c] for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: write the table; a bad or missing store is one ``Error:`` line, exit 1."""
    p = argparse.ArgumentParser(prog="python -m nfp_steps.summary_table",
                                description="Compare the models of a run: results/summary.tsv")
    p.add_argument("models", nargs="+", help="model names (folders of --results)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    p.add_argument("--output", type=Path, required=True, help="the .tsv file to write")
    args = p.parse_args(argv)
    from nfp_steps.storage import StorageError

    try:
        text = summary_tsv(args.results, args.models)
    except (StorageError, OSError, KeyError, IndexError) as exc:
        print(f"Error: summary.tsv: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    print(f"summary: {len(args.models)} model(s) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


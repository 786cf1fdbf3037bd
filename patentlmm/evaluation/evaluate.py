"""Scoring `patentlmm describe` rows per type: the paper's Table 2 metrics and reference-numeral fidelity."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from patentlmm.evaluation.metrics.patentlmm_metrics import paper_metrics
from patentlmm.evaluation.numerals import References, aggregate_fidelity, fidelity
from patentlmm.evaluation.rows import PredictionsError, check_rows, is_blank, read_predictions
from patentlmm_common.files import atomic_write
from patentlmm_common.paper import TABLE2_METRICS
from processing.constants import DESCRIPTION_TYPES

__all__ = ["INPUT", "PAPER_RESULTS", "evaluate_predictions", "format_table"]

logger = logging.getLogger(__name__)

BRIEF, DETAILED = DESCRIPTION_TYPES
# The paper's PatentLMM rows of Table 2 (PatentDesc-355k test), in `TABLE2_METRICS`' order.
PAPER_RESULTS = {
    BRIEF: dict(zip((m.key for m in TABLE2_METRICS), (46.40, 36.66, 44.59, 56.68, 42.63, 54.18, 56.44))),
    DETAILED: dict(zip((m.key for m in TABLE2_METRICS), (25.42, 15.02, 24.24, 40.70, 19.27, 27.54, 28.39))),
}

INPUT = "input"  # the results' entry on what was read: {"source", "rows_read", "rows_scored", "problems"}


def _figure_references(row: dict) -> References | None:
    if "figure_numerals" not in row or "figure_labels" not in row:
        return None
    return References(frozenset(row["figure_numerals"]), tuple(row["figure_labels"]))


def _score_type(rows: list[dict]) -> dict:
    """Metrics of the rows of one description type; an empty or blank reference is counted, never scored."""
    scored = [row for row in rows if not is_blank(row.get("reference"))]
    empty = sum(1 for row in rows if row.get("reference") is not None and is_blank(row["reference"]))
    result: dict = {"samples": len(rows), "samples_with_reference": len(scored), "empty_references": empty}
    if scored:
        result["metrics"] = paper_metrics([r["prediction"] for r in scored], [r["reference"] for r in scored])
    per_sample, reference_scores = [], []
    for row in rows:
        figure = _figure_references(row)
        if figure is None:
            continue
        per_sample.append({"image_id": row["image_id"], **fidelity(row["prediction"], figure)})
        if not is_blank(row.get("reference")):
            reference_scores.append(fidelity(row["reference"], figure))
    if per_sample:
        result["fidelity"] = aggregate_fidelity(per_sample)
        engines = {row.get("fidelity_ocr", "unrecorded") for row in rows if "figure_numerals" in row}
        result["fidelity_ocr"] = sorted(engines)
        if reference_scores:
            result["reference_fidelity"] = aggregate_fidelity(reference_scores)
        result["fidelity_per_sample"] = per_sample
    return result


def evaluate_predictions(
    predictions: str | os.PathLike | Sequence[dict], output: str | os.PathLike | None = None
) -> dict:
    """Scores prediction rows (or a JSONL path) per description type; writes the result as JSON to `output`.

    Every row is checked first (`patentlmm.evaluation.rows`): a row with a wrong type, a duplicate id (counted
    once), undecodable bytes or a torn line is logged as a warning naming the file, line and id, and left out.

    Returns:
        `{type: {"samples", "samples_with_reference", "empty_references", "metrics": {"bleu2", "bleu4", "avg_bleu",
        "rouge1", "rouge2", "rougeL", "meteor", "bleu1", "bleu3"}, "paper": {the same seven}, "fidelity": {...},
        "reference_fidelity": {...}, "fidelity_per_sample": [...]}, "input": {"source", "rows_read", "rows_scored",
        "problems": [...]}}` (keys present when their inputs are); scores in percent.

    Raises:
        PredictionsError: no valid row at all (the message gives the first problems).
    """
    if isinstance(predictions, (str, os.PathLike)):
        checked = read_predictions(predictions)
    else:
        checked = check_rows(enumerate(predictions, start=1), "predictions", unit="row")
    for problem in checked.problems:
        logger.warning("%s", problem)
    if not checked.rows:
        listed = "".join(f"\n  {problem}" for problem in checked.problems[:5])
        raise PredictionsError(f"No valid predictions to evaluate in {checked.source} ({checked.read} read).{listed}")
    results: dict = {}
    for desc_type in sorted({row.get("type", BRIEF) for row in checked.rows}):
        result = _score_type([row for row in checked.rows if row.get("type", BRIEF) == desc_type])
        if desc_type in PAPER_RESULTS:
            result["paper"] = PAPER_RESULTS[desc_type]
        results[desc_type] = result
    results[INPUT] = {"source": checked.source, "rows_read": checked.read, "rows_scored": len(checked.rows),
                      "problems": checked.problems}  # fmt: skip
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as handle:
            handle.write(json.dumps(results, indent=2) + "\n")
    return results


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(results: dict) -> str:
    """Table 2's layout (task, model, the seven metrics) with the paper's PatentLMM row above ours, then fidelity."""
    header = ["task", "model", *(m.header for m in TABLE2_METRICS)]
    lines = []
    types = {desc_type: result for desc_type, result in results.items() if desc_type != INPUT}
    for desc_type, result in types.items():
        if "paper" in result:
            lines.append([desc_type, "PatentLMM (paper)", *(_cell(result["paper"][m.key]) for m in TABLE2_METRICS)])
        if "metrics" in result:
            name = f"this model (n={result['samples_with_reference']})"
            lines.append([desc_type, name, *(_cell(result["metrics"][m.key]) for m in TABLE2_METRICS)])
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    table = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *lines]]
    table.insert(1, "-|-".join("-" * width for width in widths))
    for desc_type, result in types.items():
        if result.get("empty_references"):
            table.append(f"{desc_type}: {result['empty_references']} empty or blank references, not scored")
        for key, who in (("fidelity", "predictions"), ("reference_fidelity", "references")):
            if key in result:
                f = result[key]
                table.append(
                    f"{desc_type} numeral fidelity of {who} (n={f['samples']}): "
                    f"precision {_cell(f['numeral_precision'])}, recall {_cell(f['numeral_recall'])}, "
                    f"figure-label agreement {_cell(f['label_agreement'])} (n={f['label_agreement_samples']}); "
                    f"figure OCR: {', '.join(result['fidelity_ocr'])}"
                )
    if INPUT in results:
        read = results[INPUT]
        table.append(f"scored {read['rows_scored']} of the {read['rows_read']} rows of {read['source']}; "
                     f"{len(read['problems'])} with problems left out")  # fmt: skip
    return "\n".join(table)

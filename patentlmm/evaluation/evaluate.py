"""Scoring `patentlmm describe` rows per type: the paper's Table 2 metrics and reference-numeral fidelity."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from patentlmm.evaluation.metrics.patentlmm_metrics import paper_metrics
from patentlmm.evaluation.numerals import References, aggregate_fidelity, fidelity
from patentlmm.paper import TABLE2_METRICS
from processing.constants import DESCRIPTION_TYPES

__all__ = ["PAPER_RESULTS", "evaluate_predictions", "format_table", "read_predictions"]

BRIEF, DETAILED = DESCRIPTION_TYPES
# The paper's PatentLMM rows of Table 2 (PatentDesc-355k test), in `TABLE2_METRICS`' order.
PAPER_RESULTS = {
    BRIEF: dict(zip((m.key for m in TABLE2_METRICS), (46.40, 36.66, 44.59, 56.68, 42.63, 54.18, 56.44))),
    DETAILED: dict(zip((m.key for m in TABLE2_METRICS), (25.42, 15.02, 24.24, 40.70, 19.27, 27.54, 28.39))),
}


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """The rows of a predictions JSONL (blank lines skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _figure_references(row: dict) -> References | None:
    if "figure_numerals" not in row or "figure_labels" not in row:
        return None
    return References(frozenset(row["figure_numerals"]), tuple(row["figure_labels"]))


def _score_type(rows: list[dict]) -> dict:
    """Metrics of the rows of one description type."""
    scored = [row for row in rows if row.get("reference") is not None]
    result: dict = {"samples": len(rows), "samples_with_reference": len(scored)}
    if scored:
        result["metrics"] = paper_metrics([r["prediction"] for r in scored], [r["reference"] for r in scored])
    per_sample, reference_scores = [], []
    for row in rows:
        figure = _figure_references(row)
        if figure is None:
            continue
        per_sample.append({"image_id": row["image_id"], **fidelity(row["prediction"], figure)})
        if row.get("reference") is not None:
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

    Returns:
        `{type: {"samples", "samples_with_reference", "metrics": {"bleu2", "bleu4", "avg_bleu", "rouge1", "rouge2",
        "rougeL", "meteor", "bleu1", "bleu3"}, "paper": {the same seven}, "fidelity": {...}, "reference_fidelity":
        {...}, "fidelity_per_sample": [...]}}` (keys present when their inputs are); scores in percent.
    """
    rows = read_predictions(predictions) if isinstance(predictions, (str, os.PathLike)) else list(predictions)
    if not rows:
        raise ValueError("No predictions to evaluate.")
    missing = [i for i, row in enumerate(rows) if "prediction" not in row or "image_id" not in row]
    if missing:
        raise ValueError(f"Rows {missing[:5]} lack 'image_id' or 'prediction'.")
    results = {}
    for desc_type in sorted({row.get("type", BRIEF) for row in rows}):
        result = _score_type([row for row in rows if row.get("type", BRIEF) == desc_type])
        if desc_type in PAPER_RESULTS:
            result["paper"] = PAPER_RESULTS[desc_type]
        results[desc_type] = result
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(results: dict) -> str:
    """Table 2's layout (task, model, the seven metrics) with the paper's PatentLMM row above ours, then fidelity."""
    header = ["task", "model", *(m.header for m in TABLE2_METRICS)]
    lines = []
    for desc_type, result in results.items():
        if "paper" in result:
            lines.append([desc_type, "PatentLMM (paper)", *(_cell(result["paper"][m.key]) for m in TABLE2_METRICS)])
        if "metrics" in result:
            name = f"this model (n={result['samples_with_reference']})"
            lines.append([desc_type, name, *(_cell(result["metrics"][m.key]) for m in TABLE2_METRICS)])
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    table = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *lines]]
    table.insert(1, "-|-".join("-" * width for width in widths))
    for desc_type, result in results.items():
        for key, who in (("fidelity", "predictions"), ("reference_fidelity", "references")):
            if key in result:
                f = result[key]
                table.append(
                    f"{desc_type} numeral fidelity of {who} (n={f['samples']}): "
                    f"precision {_cell(f['numeral_precision'])}, recall {_cell(f['numeral_recall'])}, "
                    f"figure-label agreement {_cell(f['label_agreement'])} (n={f['label_agreement_samples']}); "
                    f"figure OCR: {', '.join(result['fidelity_ocr'])}"
                )
    return "\n".join(table)

"""Reference-numeral fidelity: do the part numbers and figure labels of a description match its figure?"""

from __future__ import annotations

from collections.abc import Sequence

from processing.references import References, extract_references, figure_label_spans, find_numerals

__all__ = [
    "References",
    "aggregate_fidelity",
    "extract_references",
    "fidelity",
    "figure_label_spans",
    "find_numerals",
]


def _ratio(hits: int, total: int) -> float | None:
    return hits / total if total else None


def fidelity(text: str, figure: References) -> dict[str, float | int | None]:
    """Per-sample scores of `text` against the figure's references (docs/evaluation.md)."""
    found = extract_references(text)
    hits = len(found.numerals & figure.numerals)
    agreement = None
    if found.labels and figure.labels:
        agreement = float(found.labels[0] in figure.labels)
    return {
        "figure_numerals": sorted(figure.numerals),  # what the figure's OCR read (eval reports it per figure)
        "numerals_mentioned": sorted(found.numerals & figure.numerals),
        "numeral_precision": _ratio(hits, len(found.numerals)),
        "numeral_recall": _ratio(hits, len(figure.numerals)),
        "label_agreement": agreement,
        "numerals_matched": hits,
        "numerals_in_text": len(found.numerals),
        "numerals_in_figure": len(figure.numerals),
    }


def aggregate_fidelity(scores: Sequence[dict]) -> dict[str, float | int | None]:
    """Micro precision/recall (summed counts) and mean label agreement, in percent, over per-sample `fidelity`."""
    matched = sum(s["numerals_matched"] for s in scores)
    in_text = sum(s["numerals_in_text"] for s in scores)
    in_figure = sum(s["numerals_in_figure"] for s in scores)
    agreements = [s["label_agreement"] for s in scores if s["label_agreement"] is not None]
    return {
        "numeral_precision": None if not in_text else 100 * matched / in_text,
        "numeral_recall": None if not in_figure else 100 * matched / in_figure,
        "label_agreement": None if not agreements else 100 * sum(agreements) / len(agreements),
        "label_agreement_samples": len(agreements),
        "samples": len(scores),
    }

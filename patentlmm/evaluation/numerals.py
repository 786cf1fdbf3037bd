"""Reference-numeral fidelity: do the part numbers and figure labels of a description match its figure?"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "References",
    "aggregate_fidelity",
    "extract_references",
    "fidelity",
    "figure_label_spans",
    "find_numerals",
]

_NUMBER = r"\d{1,4}[A-Za-z]?"
_LABEL = re.compile(
    rf"\b(?:fig(?:ure)?s?)\b\.?\s*({_NUMBER}(?:\s*(?:,|and|or|&|-|–|to|through)\s*{_NUMBER}\b)*)",
    re.IGNORECASE,
)
_LABEL_PART = re.compile(rf"({_NUMBER})\s*(-|–|to|through)?", re.IGNORECASE)
# A candidate numeral: not glued to a letter/digit/decimal point before it, 1-4 digits, optional a-z or prime suffix.
_NUMERAL = re.compile(r"(?<![\w.,/-])(\d{1,4})([a-z]?)(['’′]?)(?![\w%°]|[.,]\d)")
_UNIT_AFTER = re.compile(r"\s*(?:mm|cm|km|inch|inches|ft|kg|lb|lbs|psi|bar|kpa|mpa|hz|khz|kv|kw|ma|ms|°)\b")
_COUNTER_BEFORE = re.compile(r"(?:\b(?:nos?|steps?|claims?|table|test)|#)\.?\s*\(?$", re.IGNORECASE)


@dataclass(frozen=True)
class References:
    """Reference numerals and figure labels found in one text (normalised, lower case)."""

    numerals: frozenset[str]
    labels: tuple[str, ...]  # in order of appearance, without repeats; labels[0] is the figure a brief describes


def _label_numbers(group: str) -> list[str]:
    """`"3-5"` -> ["3", "4", "5"]; `"3, 4A and 6"` -> ["3", "4a", "6"]."""
    numbers: list[str] = []
    pending_range = False
    for number, connector in _LABEL_PART.findall(group):
        number = number.lower()
        if pending_range and numbers and numbers[-1].isdigit() and number.isdigit() and int(number) > int(numbers[-1]):
            numbers.extend(str(n) for n in range(int(numbers[-1]) + 1, int(number) + 1))
        else:
            numbers.append(number)
        pending_range = bool(connector)
    return numbers


def _labels(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The figure labels of `text` (in order, without repeats) and the character spans of their mentions."""
    labels: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _LABEL.finditer(text):
        spans.append(match.span())
        for number in _label_numbers(match.group(1)):
            if number not in labels:
                labels.append(number)
    return labels, spans


def figure_label_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of the figure-label mentions of `text` ("FIG. 3", "FIGS. 3 and 4")."""
    return _labels(text)[1]


def find_numerals(text: str) -> list[tuple[int, int, str]]:
    """`(start, end, numeral)` for each reference numeral in `text`, normalised as in `References.numerals`; the
    numbers of figure labels (`FIG. 4`) are not numerals."""
    _, spans = _labels(text)
    found = []
    for match in _NUMERAL.finditer(text):
        start, end = match.span()
        if any(a <= start < b for a, b in spans):
            continue
        if _UNIT_AFTER.match(text, end) or _COUNTER_BEFORE.search(text[max(0, start - 12) : start]):
            continue
        found.append((start, end, match.group(1) + match.group(2) + ("'" if match.group(3) else "")))
    return found


def extract_references(text: str) -> References:
    """Figure labels and reference numerals of `text` (a description, or OCR words joined with spaces)."""
    labels, _ = _labels(text)
    return References(frozenset(numeral for _, _, numeral in find_numerals(text)), tuple(labels))


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

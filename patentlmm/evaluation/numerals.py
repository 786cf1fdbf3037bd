"""Reference-numeral fidelity: do a description's part numbers and figure labels match the figure?

Patent texts name parts by reference numerals ("fuel nozzle 402", "the bellows (10)", "arm 11a") and figures by
labels ("FIG. 4", "FIGS. 3-5", "Figure 8"). The drawing shows the same numerals next to the parts and its own label,
which the OCR reads (`patentlmm describe --fidelity-ocr`, default the `drawing` engine: page OCR misses most
isolated numerals; see docs/ocr.md). This module extracts both kinds from OCR words and from texts and scores a
prediction:

- numeral precision = |numerals(text) ∩ numerals(figure)| / |numerals(text)|: numerals mentioned that the figure has;
- numeral recall    = |numerals(text) ∩ numerals(figure)| / |numerals(figure)|: figure numerals mentioned;
- label agreement   = 1 when the text's first figure label (the figure it describes: "FIG. 8 is ...") is one of the
  figure's own OCR labels, else 0.
Each is `None` for a sample where its denominator is empty (no numerals / no label on that side). Aggregates:
micro precision/recall (counts summed over samples) and the mean label agreement over the samples where it is defined.

The rule (`extract_references`):
1. Figure labels: `FIG`, `FIGS`, `Fig`, `Figure`, `Figures` (any case, optional `.`), then a number with an optional
   letter suffix (`4`, `4A`), then more numbers joined by `,` `and` `or` `&` (each kept) or `-` `–` `to` `through`
   (a range: `FIGS. 3-5` -> 3, 4, 5 when both ends are plain numbers). Labels are normalised to `"4"`, `"4a"`.
2. Reference numerals: the remaining standalone tokens of 1-4 digits with an optional lower-case letter or prime
   suffix (`402`, `11a`, `11'`), possibly in parentheses; normalised to lower case without the prime's quote style.
   Not numerals: digits inside a word or a decimal (`M8`, `2.5`), numbers followed by a unit or `%`
   (`5 mm`, `30°`), numbers after `No.`/`step`/`claim`/`Table`/`Test` words, and numbers of 5+ digits (patent and
   serial numbers).
3. OCR words go through the same rule after being joined with spaces, so `Figure` `8` on two words is a label.

Limits: a plain count, quantity or year in a text ("3 holes", "2 arms", "2025") is taken for a numeral, and
one-letter units (`5 m`, `3 s`) are not recognised (they would swallow OCR's `11 a`); a numeral drawn with a
letter suffix in the figure but written plain in the text (or the reverse) does not match; Tesseract misreads
(`l0` for `10`, missed small numerals, leader lines touching digits) lower recall; sheets with several figures give
several labels, all of which count as the figure's own. Per sample, `fidelity` also lists the figure's numerals
(`figure_numerals`) and those the text mentions (`numerals_mentioned`).

    from patentlmm.evaluation.numerals import extract_references, fidelity
    figure = extract_references(" ".join(ocr_words))
    scores = fidelity(prediction, figure)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "References",
    "aggregate_fidelity",
    "extract_references",
    "fidelity",
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
    """Per-sample scores of `text` against the figure's references (see the module docstring)."""
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

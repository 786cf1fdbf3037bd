"""What reference numerals (`12`, `14a`, `16'`) and figure labels (`FIG. 4`, `Figures 3-5`) look like in text."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "References",
    "extract_references",
    "figure_label_spans",
    "find_numerals",
    "is_figure_label",
    "is_numeral",
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


def is_numeral(word: str) -> bool:
    """Whether one OCR word is a reference numeral on its own (`12`, `(14a)`, `16'`), as `find_numerals` reads it."""
    stripped = word.strip().removeprefix("(").removesuffix(")")
    found = find_numerals(stripped)
    return len(found) == 1 and found[0][:2] == (0, len(stripped))


def is_figure_label(text: str) -> bool:
    """Whether `text` (an OCR word, or words joined with a space) is one whole figure label (`FIG. 4`, `FIG.4A`)."""
    match = _LABEL.match(text.strip())
    return match is not None and match.end() == len(text.strip())

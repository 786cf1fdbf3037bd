"""A decoder tokenizer's pieces grouped by what each does to a reference numeral or figure label being written."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from patentlmm.evaluation.numerals import find_numerals

__all__ = ["TokenTable", "start_keys", "token_table"]

_START = re.compile(r"(\s?)(\d+)(.*)", re.DOTALL)  # a piece that starts a number: one optional space, digits, rest
_PENDING = re.compile(r"[a-z]?['’′]?")  # a piece after digits whose numeral the next piece decides ("a", "'")
_PRIMES = str.maketrans({"’": "'", "′": "'"})


def _after_digit(piece: str) -> tuple:
    """What `piece` does to a numeral whose digits it follows (`evaluation.numerals`' definition): ("close", suffix)
    ends it as digits + suffix; ("open", suffix) leaves it open ("a" may become "12a" or the word "12ab"); ("free",)
    makes it no numeral ("th", " mm", "%", ".5"); ("multi",) carries digits of its own."""
    if _PENDING.fullmatch(piece):
        return ("open", piece.translate(_PRIMES)) if piece else ("noop",)
    if piece in (".", ","):
        return ("close", "")  # "12." may yet become "12.5" (no numeral): taken as "12" (stricter)
    found = find_numerals(" 1" + piece)
    if any(start != 1 for start, _, _ in found):
        return ("multi",)
    return next((("close", numeral[1:]) for start, _, numeral in found if start == 1), ("free",))


def start_keys(piece: str) -> tuple[tuple, tuple]:
    """The numeral and label keys of a piece that starts with digits (its leading space removed)."""
    _, run, rest = _START.fullmatch(piece).groups()
    numeral = ("ext", run, ("end",) if not rest else _after_digit(rest))
    letter = rest[:1].lower() if rest[:1].isascii() and rest[:1].isalpha() else ""
    if re.search(r"\d", rest):
        return numeral, ("multi",)
    return numeral, ("ext", run, None if not rest else letter)


@dataclass
class TokenTable:
    """A decoder tokenizer's pieces grouped by what they do to a numeral or label being written (ids: (N,) long)."""

    pieces: list[str]
    eos: frozenset[int]
    numeral_groups: dict[tuple, torch.Tensor]  # key of `_numeral_step` -> ids, every token
    label_groups: dict[tuple, torch.Tensor]  # key of `_label_step` -> ids, every token
    starts: dict[bool, dict[tuple, torch.Tensor]]  # spaced? -> numeral key -> ids of pieces starting with digits
    label_starts: dict[bool, dict[tuple, torch.Tensor]]  # spaced? -> label key -> the same pieces
    inner_digits: torch.Tensor  # pieces with digits after another character that may begin a numeral ("(1")
    numeral_key: list[tuple] = field(repr=False, default_factory=list)  # per id
    label_key: list[tuple] = field(repr=False, default_factory=list)
    spacing: list[bool | None] = field(repr=False, default_factory=list)  # per id: None unless it starts a number


def _groups(keys: Iterable[tuple[int, tuple]]) -> dict[tuple, torch.Tensor]:
    grouped: dict[tuple, list[int]] = {}
    for token, key in keys:
        grouped.setdefault(key, []).append(token)
    return {key: torch.tensor(ids, dtype=torch.long) for key, ids in grouped.items()}


def _pieces(tokenizer: PreTrainedTokenizerBase, size: int, eos: frozenset[int]) -> list[str]:
    """Each id's text as it reads after other text (a SentencePiece "▁1" keeps its space); "" for special ids."""
    anchor = tokenizer("a", add_special_tokens=False)["input_ids"][-1]
    base = tokenizer.decode([anchor])
    ids = range(min(size, len(tokenizer)))
    texts = tokenizer.batch_decode([[anchor, i] for i in ids], clean_up_tokenization_spaces=False)
    special = set(tokenizer.all_special_ids) | eos
    pieces = ["" if i in special else text[len(base) :] for i, text in zip(ids, texts)]
    return pieces + [""] * (size - len(pieces))


@functools.lru_cache(maxsize=4)
def token_table(tokenizer: PreTrainedTokenizerBase, size: int, eos: frozenset[int]) -> TokenTable:
    """The `TokenTable` of `tokenizer` for logits of `size` ids (built once: one decode of the vocabulary)."""
    pieces = _pieces(tokenizer, size, eos)
    numeral_key, label_key, spacing, inner = [], [], [], []
    for token, piece in enumerate(pieces):
        start = _START.fullmatch(piece)
        spacing.append(bool(start.group(1)) if start else None)
        if token in eos:
            numeral_key.append(("close", ""))
            label_key.append(("close", ""))
        elif not piece:
            numeral_key.append(("noop",))
            label_key.append(("noop",))
        elif start and not start.group(1):
            numeral, label = start_keys(piece)
            numeral_key.append(numeral)
            label_key.append(label)
        else:
            after = _after_digit(piece)
            numeral_key.append(("restart", start_keys(piece[1:])[0]) if start else after)
            letter = piece[0].lower() if piece[0].isascii() and piece[0].isalpha() else ""
            label_key.append(("multi",) if re.search(r"\d", piece) else ("close", letter))
            digit = re.search(r"\d", piece)
            if digit and not start and not re.match(r"[\w.,/-]", piece[digit.start() - 1]):
                inner.append(token)  # "(1", "#12": digits that may begin a numeral
    starts = {
        spaced: _groups(
            (t, start_keys(pieces[t].lstrip())[0]) for t, s in enumerate(spacing) if s is spaced and s is not None
        )
        for spaced in (False, True)
    }
    label_starts = {
        spaced: _groups(
            (t, start_keys(pieces[t].lstrip())[1]) for t, s in enumerate(spacing) if s is spaced and s is not None
        )
        for spaced in (False, True)
    }
    return TokenTable(
        pieces=pieces,
        eos=eos,
        numeral_groups=_groups(enumerate(numeral_key)),
        label_groups=_groups(enumerate(label_key)),
        starts=starts,
        label_starts=label_starts,
        inner_digits=torch.tensor(inner, dtype=torch.long),
        numeral_key=numeral_key,
        label_key=label_key,
        spacing=spacing,
    )

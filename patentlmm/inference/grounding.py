"""Grounded decoding: a `LogitsProcessor` that lets each description cite only the reference numerals and figure
labels its figure's OCR read (docs/describe.md)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

from patentlmm.evaluation.numerals import extract_references, figure_label_spans, find_numerals
from patentlmm.inference.grounding_tokens import TokenTable, start_keys, token_table

__all__ = ["DEFAULT_GROUNDING", "GROUNDINGS", "GroundingLogitsProcessor", "grounding_for", "numeral_step", "label_step"]

logger = logging.getLogger(__name__)

GROUNDINGS = ("off", "numerals", "labels", "all")  # what `--grounding` constrains
DEFAULT_GROUNDING = "all"  # measured on the trained demo model: docs/describe.md "Grounded descriptions"
_TAIL = 48  # characters of text kept per row: enough for the counter and label contexts of `evaluation.numerals`
_LONGEST = 6  # characters of the longest numeral (4 digits, a letter, a prime): with fewer steps left than this,
# masks are recomputed for the steps left (a row never ends inside a numeral it cannot finish)
_UNKNOWN = "?"  # the citation of a piece whose digits cannot be told apart ("1 2"): never allowed


def numeral_step(open_: str, key: tuple) -> tuple[str | None, str | None]:
    """(the numeral a piece with `TokenTable` key `key` completes or None, the numeral left open or None) after the
    open numeral `open_` ("" before a number starts), as `evaluation.numerals.find_numerals` reads the text."""
    kind = key[0]
    if kind == "noop":
        return None, open_
    if kind == "multi":
        return _UNKNOWN, None
    if kind == "restart":  # " 12" after "7": cites "7" and starts a number (`_numeral_allowed` checks both)
        return open_, None
    if open_[-1:] == "'":  # "12'" stays only before a closing piece; after anything else the text cites "12"
        return (open_ if key == ("close", "") else open_[:-1]), None
    if open_[-1:].isalpha():  # "12a": a letter or digit glued after it makes a word, a prime makes "12a'"
        suffix = key[1] if kind in ("close", "open") else "x"
        if kind == "close" and suffix in ("", "'"):
            return open_ + suffix, None
        return (None, open_ + "'") if kind == "open" and suffix == "'" else (None, None)
    if kind == "ext":
        digits = open_ + key[1]
        if len(digits) > 4:  # five digits are no numeral
            return None, None
        return (None, digits) if key[2] == ("end",) else numeral_step(digits, key[2])
    if kind == "close":
        return open_ + key[1], None
    return (None, open_ + key[1]) if kind == "open" else (None, None)


def label_step(open_: str, key: tuple) -> tuple[str | None, str | None]:
    """(the figure label a piece with `TokenTable` key `key` completes or None, the label left open or None) after
    the open label digits `open_` ("" right after "FIG.")."""
    if key[0] == "noop":
        return None, open_
    if key[0] == "multi":
        return _UNKNOWN, None
    if key[0] == "ext":
        digits = open_ + key[1]
        return (None, digits) if key[2] is None else (digits + key[2], None)
    return open_ + key[1], None


def _viable(open_: str, allowed: frozenset[str], steps: int) -> bool:
    """Whether `open_` can still become an allowed numeral/label within `steps` more pieces."""
    return any(a.startswith(open_) and len(a) - len(open_) <= steps for a in allowed)


def _numeral_allowed(open_: str, key: tuple, allowed: frozenset[str], steps: int) -> bool:
    if key[0] == "restart":
        return (not open_ or open_ in allowed) and _numeral_allowed("", key[1], allowed, steps)
    cited, left = numeral_step(open_, key)
    return (cited is None or cited in allowed) and (left is None or _viable(left, allowed, steps))


def _label_allowed(open_: str, key: tuple, allowed: frozenset[str], steps: int) -> bool:
    cited, left = label_step(open_, key)
    return (cited is None or cited in allowed) and (left is None or _viable(left, allowed, steps))


@dataclass
class _Row:
    """One row's grounding: what its figure allows (None: free) and where its text stands."""

    numerals: frozenset[str]  # read on the figure (also what `bias` favours)
    constrain_numerals: bool
    labels: frozenset[str] | None  # None: labels free
    tail: str = ""
    mode: str = "free"  # "free", "numeral" (inside a numeral) or "label" (inside a label's number)
    open: str = ""
    positions: tuple[str, str] = ("free", "free")  # what a number starting now is: glued / after a space
    cited: set[str] = field(default_factory=set)
    fired: Counter = field(default_factory=Counter)
    done: bool = False
    cache: dict = field(default_factory=dict)


def _position(text: str, at: int) -> str:
    """What the number whose first digit is `text[at]` is: "label", "numeral" or "free" (a count, a measure ...)."""
    if any(a <= at < b for a, b in figure_label_spans(text)):
        return "label"
    return "numeral" if any(start == at for start, _, _ in find_numerals(text)) else "free"


class GroundingLogitsProcessor(LogitsProcessor):
    """Masks, per row of a batch, the pieces that would cite a reference numeral or figure label its figure's OCR did
    not read (`evaluation.numerals`' definition), and optionally favours numerals read but not yet cited.

    Args:
        tokenizer: the decoder's tokenizer.
        ocr_texts: per row, its figure's OCR words joined by spaces; "" or None: no OCR word (the row is free).
        grounding: one of `GROUNDINGS`.
        max_new_tokens: `generate`'s, so that no row ends inside a numeral it cannot finish.
        bias: added to the logits of pieces that write a numeral read but not yet cited (0: none).
        eos_token_id: the id(s) that end a row.
        vocab_size: the logits' last dimension (default: the tokenizer's length).

    Rows outside a number cost two regex matches on a short tail per step; rows inside one, a pass over the groups
    of `TokenTable`. `reports` tells per row what was constrained and how often each constraint changed the greedy
    choice.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        ocr_texts: Sequence[str | None],
        grounding: str,
        max_new_tokens: int,
        bias: float = 0.0,
        eos_token_id: int | Sequence[int] | None = None,
        vocab_size: int | None = None,
    ):
        if grounding not in GROUNDINGS:
            raise ValueError(f"grounding must be one of {', '.join(GROUNDINGS)}, not {grounding!r}.")
        eos = eos_token_id if eos_token_id is not None else tokenizer.eos_token_id
        eos = frozenset([eos] if isinstance(eos, int) else eos)
        self.table: TokenTable = token_table(tokenizer, vocab_size or len(tokenizer), eos)
        self.grounding, self.max_new_tokens, self.bias = grounding, max_new_tokens, bias
        self.rows = [self._row(tokenizer, text) for text in ocr_texts]
        self._prompt_length: int | None = None

    def _row(self, tokenizer: PreTrainedTokenizerBase, text: str | None) -> _Row | None:
        if not text or not text.strip() or (self.grounding == "off" and not self.bias):
            return None
        found = extract_references(text)
        numerals = frozenset(self._expressible(tokenizer, found.numerals, "numeral"))
        labels = frozenset(self._expressible(tokenizer, found.labels, "label"))
        constrain_labels = self.grounding in ("labels", "all") and bool(labels)
        return _Row(numerals, self.grounding in ("numerals", "all"), labels if constrain_labels else None)

    @staticmethod
    def _expressible(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], what: str) -> list[str]:
        """`texts` the tokenizer writes back unchanged; each other one is dropped with a warning."""
        kept = []
        for text in sorted(texts):
            ids = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
            if tokenizer.unk_token_id in ids or tokenizer.decode(ids).strip().lower() != text:
                logger.warning(
                    "Grounding: the decoder's tokenizer cannot write the %s %r; it is not allowed.", what, text
                )
            else:
                kept.append(text)
        return kept

    @property
    def reports(self) -> list[dict]:
        """Per row: `{"grounding": mode, "grounding_fired": {constraint: steps it changed the greedy choice}}`, or for
        a figure without OCR words `{"grounding": "off", "grounding_note": "no OCR words: unconstrained"}`."""
        reports = []
        for row in self.rows:
            if row is None and self.grounding != "off":
                reports.append({"grounding": "off", "grounding_note": "no OCR words: unconstrained"})
            else:
                reports.append({"grounding": self.grounding, "grounding_fired": dict(row.fired) if row else {}})
        return reports

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """input_ids: (B, prompt + generated); scores: (B, V) next-piece logits, masked in place and returned."""
        if self._prompt_length is None:
            self._prompt_length = input_ids.shape[1]
        else:
            for row, token in zip(self.rows, input_ids[:, -1].tolist()):
                if row is not None and not row.done:
                    self._advance(row, token)
        steps = self.max_new_tokens - (input_ids.shape[1] - self._prompt_length) - 1  # pieces after this one
        for index, row in enumerate(self.rows):
            if row is not None and not row.done:
                self._constrain(row, scores[index], steps)
        return scores

    # ------------------------------------------------------------------------------------------- per row, per step

    def _advance(self, row: _Row, token: int) -> None:
        """Moves `row` past the chosen `token`."""
        table = self.table
        if token >= len(table.pieces):
            return
        row.done = token in table.eos
        spacing = table.spacing[token]
        if row.mode == "free" and spacing is not None:
            row.mode = row.positions[spacing]
            row.open = ""
            if row.mode != "free":
                token_key = table.label_key if row.mode == "label" else table.numeral_key
                key = token_key[token] if not spacing else start_keys(table.pieces[token][1:])[row.mode == "label"]
                self._move(row, key)
        elif row.mode != "free":
            key = table.numeral_key[token] if row.mode == "numeral" else table.label_key[token]
            if key[0] == "restart":
                row.cited.add(row.open)
                row.open, row.mode = "", "numeral"
                key = key[1]
            self._move(row, key)
        row.tail = (row.tail + table.pieces[token])[-_TAIL:]

    def _move(self, row: _Row, key: tuple) -> None:
        cited, left = (numeral_step if row.mode == "numeral" else label_step)(row.open, key)
        if cited is not None and row.mode == "numeral":
            row.cited.add(cited)
        row.open, row.mode = (left, row.mode) if left is not None else ("", "free")

    def _constrain(self, row: _Row, scores: torch.Tensor, steps: int) -> None:
        """Masks (-inf) the pieces `row` may not take now, adds its bias, and counts which constraint fired."""
        masks: list[tuple[str, torch.Tensor]] = []
        boost: list[torch.Tensor] = []
        if row.mode == "free":
            row.positions = (_position(row.tail + "1", len(row.tail)), _position(row.tail + " 1", len(row.tail) + 1))
            for spaced, kind in enumerate(row.positions):
                masks += self._start_masks(row, bool(spaced), kind, steps)
                if kind == "numeral" and self.bias:
                    boost += self._favoured(row, self.table.starts[bool(spaced)], "", steps)
            if row.constrain_numerals and "numeral" in row.positions and len(self.table.inner_digits):
                masks.append(("numerals", self.table.inner_digits))
        elif row.mode == "numeral":
            if row.constrain_numerals:
                masks += [
                    ("numerals", ids)
                    for key, ids in self.table.numeral_groups.items()
                    if not _numeral_allowed(row.open, key, row.numerals, steps)
                ]
            if self.bias:
                boost += self._favoured(row, self.table.numeral_groups, row.open, steps)
        elif row.labels is not None:
            masks += [
                ("labels", ids)
                for key, ids in self.table.label_groups.items()
                if not _label_allowed(row.open, key, row.labels, steps)
            ]
        elif row.constrain_numerals and ("multi",) in self.table.label_groups:  # "FIG. 3 4": digits after a label
            masks.append(("numerals", self.table.label_groups[("multi",)]))
        self._apply(row, scores, masks, boost)

    def _start_masks(self, row: _Row, spaced: bool, kind: str, steps: int) -> list[tuple[str, torch.Tensor]]:
        """The masks of pieces starting a number at a numeral or label position (cached while steps are plenty)."""
        if kind == "numeral" and row.constrain_numerals:
            groups, allowed, check, name = self.table.starts[spaced], row.numerals, _numeral_allowed, "numerals"
        elif kind == "label" and row.labels is not None:
            groups, allowed, check, name = self.table.label_starts[spaced], row.labels, _label_allowed, "labels"
        else:
            return []
        cache_key = (spaced, kind, min(steps, _LONGEST))
        if cache_key not in row.cache:
            forbidden = [ids for key, ids in groups.items() if not check("", key, allowed, steps)]
            row.cache[cache_key] = [(name, torch.cat(forbidden))] if forbidden else []
        return row.cache[cache_key]

    def _favoured(self, row: _Row, groups: dict, open_: str, steps: int) -> list[torch.Tensor]:
        """Ids of pieces that keep writing a numeral read on the figure but not yet cited."""
        wanted = row.numerals - row.cited
        favoured = []
        for key, ids in groups.items():
            cited, left = numeral_step(open_, key) if key[0] != "restart" else (None, None)
            if (cited in wanted) or (left and (cited is None) and _viable(left, wanted, steps) and left != open_):
                favoured.append(ids)
        return favoured

    def _apply(self, row: _Row, scores: torch.Tensor, masks: list, boost: list) -> None:
        if not masks and not boost:
            return
        before = int(scores.argmax())
        for ids in boost:
            scores[ids] += self.bias
        if boost and int(scores.argmax()) != before:
            row.fired["bias"] += 1
        before = int(scores.argmax())
        for _, ids in masks:
            scores[ids] = -float("inf")
        if masks and int(scores.argmax()) != before:
            row.fired[next(name for name, ids in masks if bool((ids == before).any()))] += 1


def grounding_for(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    ocr_texts: Sequence[str | None],
    grounding: str,
    max_new_tokens: int,
    bias: float = 0.0,
) -> GroundingLogitsProcessor | None:
    """The grounding of one `generate` batch of `model` (a row per OCR text: its end ids and logits width), or None
    when `grounding` is "off" and there is no `bias`."""
    if grounding == "off" and not bias:
        return None
    return GroundingLogitsProcessor(
        tokenizer,
        ocr_texts,
        grounding,
        max_new_tokens,
        bias=bias,
        eos_token_id=model.generation_config.eos_token_id,
        vocab_size=model.get_output_embeddings().weight.shape[0],
    )

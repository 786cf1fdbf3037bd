"""PatentLMMCollator: PatentDesc-355k rows in TRL's prompt/completion form -> one training batch (docs/model.md)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import BatchFeature

from .constants import IGNORE_INDEX

__all__ = ["NUM_TRUNCATED_KEY", "PatentLMMCollator"]

logger = logging.getLogger(__name__)

# Batch key holding the number of samples whose description was cut (only with `report_truncation=True`).
NUM_TRUNCATED_KEY = "num_truncated"


class PatentLMMCollator:
    r"""
    Turns a list of rows into model inputs with completion-only labels. A row holds TRL's `prompt` and `completion`
    (strings: `prompts.build_prompt` and `prompts.build_completion` write them), one figure (`image`, or `images`
    holding one) and its OCR columns (`ocr_input_ids` + `ocr_bbox`, or `ocr_words` + `ocr_boxes`, or neither).

    Args:
        processor (`PatentLMMProcessor`): builds pixel values, OCR tensors and the expanded prompt ids.
        max_length (`int`, *optional*): longest sequence kept; longer samples lose the end of their description
            (never prompt or image tokens). `None` keeps everything.
        report_truncation (`bool`, defaults to `False`): add `num_truncated` (a 0-d tensor) to each batch, for a
            trainer that pops it and logs it (`patentlmm.training.PatentLMMSFTTrainer` does).

    Attributes:
        num_samples, num_truncated (`int`): samples collated and samples cut so far, in this process (data-loader
            workers count their own).
    """

    def __init__(self, processor: Any, max_length: int | None = None, report_truncation: bool = False):
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive or None, got {max_length}.")
        self.processor = processor
        self.max_length = max_length
        self.report_truncation = report_truncation
        self.num_samples = 0
        self.num_truncated = 0

    def __call__(self, rows: list[dict]) -> BatchFeature:
        """Collates `rows`; returns `input_ids`, `attention_mask`, `labels` `(B, L)`, `pixel_values`
        `(B, 3, S, S)`, `ocr_input_ids`, `ocr_attention_mask` `(B, T_ocr)` and `ocr_bbox` `(B, T_ocr, 4)`."""
        end_token = self.processor.tokenizer.eos_token
        images = [_one_image(row, index) for index, row in enumerate(rows)]
        prompts = [_text(row, "prompt", index) for index, row in enumerate(rows)]
        # The processor's `suffix` is the target without its end token, which it appends as the end-of-sequence id.
        targets = [_text(row, "completion", index).removesuffix(end_token) for index, row in enumerate(rows)]
        batch = self.processor(
            images=images, text=prompts, suffix=targets, padding_side="right", **_ocr_inputs(rows), return_tensors="pt"
        )
        num_truncated = self._truncate(batch)
        self.num_samples += len(rows)
        self.num_truncated += num_truncated
        if num_truncated:
            logger.warning(
                "Cut the description of %d of %d sample(s) to max_length=%d (%d of %d so far in this process).",
                num_truncated,
                len(rows),
                self.max_length,
                self.num_truncated,
                self.num_samples,
            )
        if self.report_truncation:
            batch[NUM_TRUNCATED_KEY] = torch.tensor(num_truncated)
        return batch

    def _truncate(self, batch: BatchFeature) -> int:
        """Cuts right-padded sequences to `max_length` in place; returns how many samples lost description tokens.

        Raises `ValueError` when a prompt alone (instruction + image placeholders) does not fit: cutting it would
        leave image features without their placeholders.
        """
        lengths = batch["attention_mask"].sum(dim=1)  # (B,)
        if self.max_length is None or int(lengths.max()) <= self.max_length:
            return 0
        has_target = batch["labels"] != IGNORE_INDEX  # (B, L)
        prompt_lengths = torch.where(has_target.any(dim=1), has_target.int().argmax(dim=1), lengths)  # (B,)
        too_long = int(prompt_lengths.max())
        if too_long >= self.max_length:
            raise ValueError(
                f"A prompt of {too_long} tokens (instruction + image placeholders, which are never cut) leaves no "
                f"room for a description within max_length={self.max_length}: raise max_length or lower the "
                "processor's max_ocr_tokens."
            )
        for key in ("input_ids", "attention_mask", "labels"):
            batch[key] = batch[key][:, : self.max_length]  # right padding: only description, end token, padding go
        return int((lengths > self.max_length).sum())


def _one_image(row: dict, index: int) -> Any:
    if "images" in row:
        if len(row["images"]) != 1:
            raise ValueError(f"Row {index} has {len(row['images'])} images; PatentLMM takes one figure per sample.")
        return row["images"][0]
    if "image" in row:
        return row["image"]
    raise ValueError(f"Row {index} has no 'image' or 'images' column.")


def _text(row: dict, column: str, index: int) -> str:
    """The row's `prompt` or `completion` (TRL's standard prompt/completion form: strings)."""
    text = row.get(column)
    if not isinstance(text, str):
        found = "no such column" if column not in row else f"a {type(text).__name__}"
        raise ValueError(
            f"Row {index} has {found} for {column!r}: PatentLMM trains on rows with a `prompt` and a `completion` "
            "string (patentlmm.training.to_prompt_completion writes them)."
        )
    return text


def _ocr_inputs(rows: list[dict]) -> dict[str, list]:
    """The processor's OCR arguments, row by row: the official token ids where a row has them (the paper's OCR), else
    its words/boxes, else nothing (the processor runs Tesseract on that figure)."""
    official = [
        {"input_ids": row["ocr_input_ids"], "bbox": row["ocr_bbox"]}
        if row.get("ocr_input_ids") is not None and row.get("ocr_bbox") is not None
        else None
        for row in rows
    ]
    has_words = [
        ocr is None and row.get("ocr_words") is not None and row.get("ocr_boxes") is not None
        for row, ocr in zip(rows, official)
    ]
    inputs = {}
    if any(ocr is not None for ocr in official):
        inputs["ocr"] = official
    if any(has_words):
        inputs["ocr_words"] = [row["ocr_words"] if words else None for row, words in zip(rows, has_words)]
        inputs["ocr_boxes"] = [row["ocr_boxes"] if words else None for row, words in zip(rows, has_words)]
    return inputs

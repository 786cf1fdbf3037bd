"""Prompt (+ target) token ids with each `<image>` expanded to its figure's placeholder count, padded to a batch."""

from __future__ import annotations

from typing import Any

from .constants import IGNORE_INDEX
from .prompts import tokenize_prompt

__all__ = ["encode_prompts", "pad_rows", "replacement_offsets"]


def _prompt_ids(tokenizer: Any, prompt: str, image_token: str, num_features: int | None) -> list[int]:
    """The ids of one prompt (the original's rule), its `<image>` expanded to `num_features` placeholders."""
    bos = tokenizer.bos_token
    if bos and prompt.startswith(bos):  # the default chat template's `<s> `: the rule adds its own `<s>`
        prompt = prompt[len(bos) :]
    ids = tokenize_prompt(tokenizer, prompt, image_token)
    if num_features is not None:
        image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        at = ids.index(image_token_id)
        ids = ids[:at] + [image_token_id] * num_features + ids[at + 1 :]
    return ids


def encode_prompts(
    tokenizer: Any,
    texts: list[str],
    suffixes: list[str] | None,
    num_features: list[int],
    image_token: str,
    padding_side: str,
) -> dict[str, list]:
    """Tokenises each prompt (+ its suffix and the end-of-sequence token), expands its `<image>` to `num_features[i]`
    placeholders (`num_features` empty: prompts without figures) and pads the batch on `padding_side`.

    Returns `input_ids` and `attention_mask` `(batch_size, sequence_length)` as lists, and `labels` (the suffix ids,
    `IGNORE_INDEX` elsewhere) when `suffixes` are given.
    """
    if num_features and len(num_features) != len(texts):
        raise ValueError(f"Got {len(texts)} prompts for {len(num_features)} images: pass one image per prompt.")
    expected = 1 if num_features else 0
    rows, label_rows = [], []
    for i, prompt in enumerate(texts):
        count = prompt.count(image_token)
        if count != expected:
            raise ValueError(
                f"Prompt {i} contains {count} {image_token} tokens but {expected} image(s) were given for "
                f"it: each sample takes exactly one figure and one {image_token} in its prompt."
            )
        ids = _prompt_ids(tokenizer, prompt, image_token, num_features[i] if num_features else None)
        labels = [IGNORE_INDEX] * len(ids)
        if suffixes is not None:
            target = tokenizer(suffixes[i], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids, labels = ids + target, labels + target
        rows.append(ids)
        label_rows.append(labels)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batch = pad_rows(rows, pad_id, padding_side)
    if suffixes is not None:
        batch["labels"] = pad_rows(label_rows, IGNORE_INDEX, padding_side)["input_ids"]
    return batch


def pad_rows(rows: list[list[int]], pad_id: int, padding_side: str) -> dict[str, list[list[int]]]:
    """`rows` padded with `pad_id` to the longest on `padding_side`: `input_ids` and `attention_mask` (1 = real)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
    length = max(len(row) for row in rows)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": []}
    for row in rows:
        pad, real = length - len(row), len(row)
        left = padding_side == "left"
        batch["input_ids"].append([pad_id] * pad + row if left else row + [pad_id] * pad)
        batch["attention_mask"].append([0] * pad + [1] * real if left else [1] * real + [0] * pad)
    return batch


def replacement_offsets(texts: list[str], num_features: list[int], image_token: str) -> list[list[dict[str, Any]]]:
    """Per prompt, where its `<image>` is (`span`, characters) and what it expands to (`replacement`,
    `num_features[i]` placeholders, at `new_span` in the expanded text); `[]` for prompts without figures."""
    offsets = []
    for i, prompt in enumerate(texts):
        if not num_features:
            offsets.append([])
            continue
        start = prompt.index(image_token)
        replacement = image_token * num_features[i]
        span = {
            "type": "image",
            "span": (start, start + len(image_token)),
            "new_span": (start, start + len(replacement)),
            "text": image_token,
            "replacement": replacement,
        }
        offsets.append([span])
    return offsets

"""The arguments of `PatentLMMProcessor.__call__`, checked and laid out as lists with one entry per figure."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["CallArguments", "per_figure", "refuse_unsupported"]


@dataclass(frozen=True)
class CallArguments:
    """One call's inputs as lists: `images` (`None`: a text-only call) and, one entry per figure (`None` where not
    given), its precomputed `ocr_words`, `ocr_boxes` and official `ocr` tokens; `texts` and `suffixes` per prompt."""

    images: list | None
    texts: list[str] | None
    suffixes: list[str] | None
    ocr_words: list
    ocr_boxes: list
    ocr: list


def refuse_unsupported(kwargs: dict[str, Any], truncation: bool | None) -> None:
    """Raises on arguments `__call__` does not take; `apply_chat_template` (and so the image-text-to-text pipeline)
    passes `videos=None` and `audio=None`, which are accepted."""
    unsupported = sorted(key for key in ("videos", "audio") if kwargs.pop(key, None) is not None)
    if kwargs or unsupported:
        raise TypeError(f"Unexpected arguments: {sorted(kwargs) + unsupported}.")
    if truncation:
        raise ValueError(
            f"truncation={truncation!r}: PatentLMMProcessor never truncates prompts (that would cut a figure's "
            "<image> placeholders); pass None or False, or cut the text before the call."
        )


def per_figure(images, text, suffix, ocr_words, ocr_boxes, ocr) -> CallArguments:
    """The call's inputs as `CallArguments`; the figures unnested (`apply_chat_template` nests them per
    conversation: `[[figure], ...]`). Raises on a missing input or a count that does not match."""
    if images is None and text is None:
        raise ValueError("Pass images, text, or both.")
    images = _as_list(images)
    if images is not None and all(isinstance(image, (list, tuple)) and len(image) == 1 for image in images):
        images = [image[0] for image in images]
    arguments = CallArguments(
        images=images,
        texts=_as_list(text),
        suffixes=_as_list(suffix),
        ocr_words=_per_image(ocr_words, images, "ocr_words"),
        ocr_boxes=_per_image(ocr_boxes, images, "ocr_boxes"),
        ocr=_per_image([ocr] if isinstance(ocr, dict) else ocr, images, "ocr"),
    )
    texts, suffixes = arguments.texts, arguments.suffixes
    if suffixes is not None and (texts is None or len(suffixes) != len(texts)):
        raise ValueError(f"Got {len(suffixes)} suffixes for {0 if texts is None else len(texts)} prompts.")
    return arguments


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, (list, tuple)):
        return [value]
    return list(value)


def _per_image(values: Any, images: list | None, name: str) -> list:
    """One entry per image (None where not given), checking the count."""
    if images is None:
        if values is not None:
            raise ValueError(f"{name} was given without images.")
        return []
    if values is None:
        return [None] * len(images)
    if len(values) != len(images):
        raise ValueError(f"Got {len(values)} {name} entries for {len(images)} images.")
    return list(values)

"""PatentMMECollator: pretraining rows -> a PatentMMEForPreTraining batch, with seeded MLM and MIM masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from dataset_builder.layout_elements import PATCH_CLASSES, patch_grid, patch_labels, token_nodes
from modeling_patentlmm import PatentMMEConfig, PatentMMEVisualTokenizer
from modeling_patentlmm.visual_tokenizer_patentmme import figure_pixel_values
from processing.images import load_image
from processing.ocr_tokens import pad_ocr_tokens, tokenize_ocr

__all__ = ["IGNORE_INDEX", "PatentMMECollator", "check_visual_tokenizer"]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
NODE_CLASS = PATCH_CLASSES.index("node")


@dataclass
class PatentMMECollator:
    """Rows of the dataset's `pretraining` config (`image`, `ocr_words`, `ocr_boxes`, `layout_boxes`,
    `layout_classes`, `visual_tokens`) -> the keyword arguments of `PatentMMEForPreTraining.forward`.

    Per figure, from one `torch.Generator` seeded with `seed` (the same rows in the same order give the same masks):
    MLM masks `int(mlm_probability * n)` of its n real OCR tokens, never `<s>`, `</s>` or padding, replacing each by
    `<mask>` (no 80/10/10, as `patentmme_layoutlmv3.py:925-943`); MIM masks `int(mim_probability * m)` of its m
    candidate patches, those inside a layout element (`mim_strategy="layout"`) or all (`"random"`), as `:1002-1013`.
    A row without `visual_tokens` is tokenized here by `visual_tokenizer`, once per `image_id` (the ids are kept in
    memory, 2 bytes each, for the next epochs; the dataset's `visual-tokens` step caches them on disk). A figure
    whose image cannot be loaded is left out of its batch with a warning naming it and the reason (counted in
    `num_skipped`); the run goes on.

    Args:
        ocr_tokenizer: the LayoutLMv3 tokenizer (its `<mask>` replaces MLM tokens).
        config: the model's `PatentMMEConfig` (rates, strategy, geometry, `max_nodes`).
        visual_tokenizer: gives the MIM targets of rows without `visual_tokens`.
        seed: seed of the mask generator.
        max_ocr_tokens: longest OCR sequence (`<s>` and `</s>` included); at most the encoder's
            `max_position_embeddings - 2` (RoBERTa positions start at 2).
    """

    ocr_tokenizer: PreTrainedTokenizerBase
    config: PatentMMEConfig
    visual_tokenizer: PatentMMEVisualTokenizer | None = None
    seed: int = 0
    max_ocr_tokens: int = 512
    generator: torch.Generator = field(init=False, repr=False)
    num_skipped: int = field(init=False, default=0)
    _tokens: dict[str, torch.Tensor] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.seed)
        self.max_ocr_tokens = min(self.max_ocr_tokens, self.config.max_position_embeddings - 2)
        if tuple(self.config.patch_classes) != PATCH_CLASSES:
            raise ValueError(f"config.patch_classes {self.config.patch_classes} differ from the data's {PATCH_CLASSES}")
        if self.ocr_tokenizer.mask_token_id is None:
            raise ValueError("The OCR tokenizer has no <mask> token: MLM needs one (LayoutLMv3's is <mask>).")
        if self.visual_tokenizer is not None:
            check_visual_tokenizer(self.visual_tokenizer, self.config)

    @property
    def grid(self) -> int:
        return self.config.input_size // self.config.patch_size

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows, images = self._load(rows)
        pixel_values = figure_pixel_values(images, self.config.input_size)  # (B, 3, S, S)
        visual_tokens = self._visual_tokens(rows, pixel_values)  # (B, P)
        figures = [self._figure(row, tokens) for row, tokens in zip(rows, visual_tokens)]
        padded = pad_ocr_tokens([(f["input_ids"], f["bbox"]) for f in figures], self.ocr_tokenizer.pad_token_id)
        length, nodes = len(padded["ocr_input_ids"][0]), max(len(f["node_patch_map"]) for f in figures)
        return {
            "input_ids": torch.tensor(padded["ocr_input_ids"]),
            "bbox": torch.tensor(padded["ocr_bbox"]),
            "attention_mask": torch.tensor(padded["ocr_attention_mask"]),
            "pixel_values": pixel_values,
            "mlm_labels": torch.stack([_pad(f["mlm_labels"], length, IGNORE_INDEX) for f in figures]),
            "mim_labels": torch.stack([f["mim_labels"] for f in figures]),
            "patch_labels": torch.stack([f["patch_labels"] for f in figures]),
            "tna_labels": torch.stack([_pad(f["tna_labels"], length, IGNORE_INDEX) for f in figures]),
            "node_patch_map": torch.stack([_pad_rows(f["node_patch_map"], nodes) for f in figures]),
        }

    def _load(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list]:
        """(rows whose image loads, their RGB images); the others are reported and left out."""
        kept, images = [], []
        for index, row in enumerate(rows):
            image = row.get("image")
            if isinstance(image, dict):  # datasets' undecoded Image: {"bytes", "path"}
                image = image.get("bytes") or image.get("path")
            try:
                images.append(load_image(image))
            except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many types on damaged files
                self.num_skipped += 1
                logger.warning("%s skipped: its image cannot be loaded (%s: %s).", _name(row, index),
                               type(error).__name__, error)  # fmt: skip
                continue
            kept.append(row)
        if not kept:
            raise ValueError(f"No figure of this batch of {len(rows)} could be loaded (see the warnings above).")
        return kept, images

    def _visual_tokens(self, rows: list[dict[str, Any]], pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, P) ids: each row's cached `visual_tokens`, the others from `visual_tokenizer`."""
        patches = self.grid**2
        tokens = torch.full((len(rows), patches), IGNORE_INDEX, dtype=torch.long)
        missing = [i for i, row in enumerate(rows) if row.get("visual_tokens") is None]
        for i, row in enumerate(rows):
            if i not in missing:
                ids = torch.as_tensor(row["visual_tokens"], dtype=torch.long)
                if ids.shape != (patches,) or int(ids.min()) < 0 or int(ids.max()) >= self.config.mim_vocab_size:
                    raise ValueError(
                        f"{_name(row, i)}: its visual_tokens ({tuple(ids.shape)}, ids {int(ids.min())}-"
                        f"{int(ids.max())}) do not fit the model ({patches} patches, {self.config.mim_vocab_size} "
                        "MIM classes): a cache from another tokenizer or image size; rerun the visual-tokens step."
                    )
                tokens[i] = ids
        for i in [i for i in missing if rows[i].get("image_id") in self._tokens]:
            tokens[i] = self._tokens[rows[i]["image_id"]].long()
            missing.remove(i)
        if missing:
            if self.visual_tokenizer is None:
                raise ValueError(f"{_name(rows[missing[0]], missing[0])} has no visual_tokens and no tokenizer is set.")
            tokens[missing] = self.visual_tokenizer.encode(pixel_values[missing]).cpu()
            for i in missing:
                if rows[i].get("image_id"):
                    self._tokens[rows[i]["image_id"]] = tokens[i].to(torch.int16)  # codes < 32,768
        return tokens

    def _figure(self, row: dict[str, Any], visual_tokens: torch.Tensor) -> dict[str, Any]:
        """One figure's OCR tokens, MLM mask and labels, MIM labels, PCH targets and TNA labels (unpadded)."""
        ids, boxes = tokenize_ocr(
            self.ocr_tokenizer, row["ocr_words"] or [], row["ocr_boxes"] or [], self.max_ocr_tokens
        )
        layout_boxes = np.asarray(row.get("layout_boxes") or [], dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(row.get("layout_classes") or [], dtype=np.int64)
        patch_targets = torch.from_numpy(patch_labels(layout_boxes, classes, self.grid)).float()  # (P, C)
        node_boxes = layout_boxes[classes == NODE_CLASS][: self.config.max_nodes]
        nodes = token_nodes(np.asarray(boxes[1:-1]).reshape(-1, 4), node_boxes, self.grid)  # (n,) -1 = none
        tna = torch.full((len(ids),), IGNORE_INDEX, dtype=torch.long)
        tna[1:-1] = torch.from_numpy(np.where(nodes < 0, IGNORE_INDEX, nodes))
        input_ids, mlm_labels = self._mask_tokens(torch.tensor(ids))
        return {
            "input_ids": input_ids.tolist(),
            "bbox": boxes,
            "mlm_labels": mlm_labels,
            "mim_labels": self._mask_patches(visual_tokens, patch_targets.any(dim=1)),
            "patch_labels": patch_targets,
            "tna_labels": tna,
            "node_patch_map": torch.from_numpy(patch_grid(node_boxes, self.grid)).float(),  # (N, P)
        }

    def _mask_tokens(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked ids, labels) of one figure's `<s> ... </s>` ids; labels -100 except at the masked tokens."""
        real = torch.arange(1, len(ids) - 1)
        chosen = real[
            torch.randperm(len(real), generator=self.generator)[: int(self.config.mlm_probability * len(real))]
        ]
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[chosen] = ids[chosen]
        masked = ids.clone()
        masked[chosen] = self.ocr_tokenizer.mask_token_id
        return masked, labels

    def _mask_patches(self, visual_tokens: torch.Tensor, in_element: torch.Tensor) -> torch.Tensor:
        """(P,) MIM labels: the visual token at each masked patch, -100 elsewhere."""
        candidates = (in_element if self.config.mim_strategy == "layout" else torch.ones_like(in_element)).nonzero()
        candidates = candidates.flatten()
        count = int(self.config.mim_probability * len(candidates))
        chosen = candidates[torch.randperm(len(candidates), generator=self.generator)[:count]]
        labels = torch.full_like(visual_tokens, IGNORE_INDEX)
        labels[chosen] = visual_tokens[chosen]
        return labels


def check_visual_tokenizer(tokenizer: PatentMMEVisualTokenizer, config: PatentMMEConfig) -> None:
    """Raises `ValueError` when the tokenizer's image size, patch size or codebook does not fit the model."""
    if tokenizer.image_size != config.input_size or tokenizer.downsampling != config.patch_size:
        raise ValueError(
            f"The visual tokenizer reads {tokenizer.image_size}-px figures in {tokenizer.downsampling}-px patches; "
            f"the model {config.input_size}-px in {config.patch_size}-px patches."
        )
    if tokenizer.num_embeddings + 1 != config.mim_vocab_size:
        raise ValueError(
            f"The visual tokenizer has {tokenizer.num_embeddings} codes; the model's MIM head "
            f"{config.mim_vocab_size} classes (codes + 1)."
        )


def _name(row: dict[str, Any], index: int) -> str:
    return f"Figure {row['image_id']!r}" if row.get("image_id") else f"Row {index}"


def _pad(values: torch.Tensor, length: int, fill: int) -> torch.Tensor:
    return torch.cat([values, torch.full((length - len(values),), fill, dtype=values.dtype)])


def _pad_rows(matrix: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.cat([matrix, matrix.new_zeros(rows - len(matrix), matrix.shape[1])])

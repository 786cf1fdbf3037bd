"""PatentMMECollator: exact mask counts, never special/padding/non-element positions, seeded, empty figures, caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dataset_builder.layout_elements import patch_grid, patch_labels, token_nodes
from helpers.patentmme import tiny_patentmme
from modeling_patentlmm import PatentMMEConfig, PatentMMEForPreTraining
from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN, PatentMMEVisualTokenizer
from patentlmm.assembly.tiny import build_ocr_tokenizer
from patentlmm.pretraining import PatentMMECollator

TINY = tiny_patentmme(input_size=128, max_nodes=3)
GRID = 8  # 128 / 16


@pytest.fixture(scope="module")
def ocr_tokenizer():
    return build_ocr_tokenizer()


def _config(ocr_tokenizer, **overrides) -> PatentMMEConfig:
    return PatentMMEConfig(**{**TINY, "vocab_size": len(ocr_tokenizer), **overrides})


def _rows() -> list[dict]:
    """Figure A: 12 words, 4 nodes (one beyond max_nodes) with labels; figure B: no word, no element."""
    words = [f"{n}" for n in range(10, 22)]
    boxes = [[80 * i, 100 + 30 * (i % 3), 80 * i + 60, 125 + 30 * (i % 3)] for i in range(12)]
    nodes = [[0, 50, 300, 300], [300, 50, 700, 400], [50, 500, 500, 900], [600, 600, 990, 990]]
    first = {
        "image_id": "A",
        "image": Image.new("RGB", (300, 200), "white"),
        "ocr_words": words,
        "ocr_boxes": boxes,
        "layout_boxes": nodes + [[800, 20, 950, 60]],
        "layout_classes": [0, 0, 0, 0, 2],
    }
    empty = {"image_id": "B", "image": Image.new("RGB", (64, 64), "white"), "ocr_words": [], "ocr_boxes": []}
    return [first, {**empty, "layout_boxes": [], "layout_classes": []}]


def _collator(ocr_tokenizer, seed=0, **overrides) -> PatentMMECollator:
    config = _config(ocr_tokenizer, **overrides)
    tokenizer = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=128)
    return PatentMMECollator(ocr_tokenizer, config, tokenizer, seed=seed, max_ocr_tokens=64)


def test_mask_counts_are_exact_and_avoid_special_padding_and_non_element_positions(ocr_tokenizer):
    rows = _rows()
    batch = _collator(ocr_tokenizer)(rows)
    real = int(batch["attention_mask"][0].sum())  # <s> + word tokens + </s>
    masked = (batch["mlm_labels"][0] != -100).nonzero().flatten()
    assert len(masked) == int(0.3 * (real - 2)) and len(masked) > 0
    assert masked.min() >= 1 and masked.max() <= real - 2  # never <s>, </s> or padding
    assert (batch["input_ids"][0, masked] == ocr_tokenizer.mask_token_id).all()
    unmasked = batch["mlm_labels"][0] == -100
    original = torch.tensor(ocr_tokenizer(rows[0]["ocr_words"], boxes=rows[0]["ocr_boxes"])["input_ids"])
    assert torch.equal(batch["mlm_labels"][0, masked], original[masked])
    assert torch.equal(batch["input_ids"][0, :real][unmasked[:real]], original[unmasked[:real]])

    elements = patch_labels(rows[0]["layout_boxes"], rows[0]["layout_classes"], GRID).any(axis=1)
    mim = (batch["mim_labels"][0] != -100).numpy()
    assert mim.sum() == int(0.4 * elements.sum()) and not (mim & ~elements).any()
    visual = PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=128).encode(batch["pixel_values"])
    assert torch.equal(batch["mim_labels"][0][torch.from_numpy(mim)], visual[0][torch.from_numpy(mim)])


def test_random_mim_draws_from_every_patch(ocr_tokenizer):
    batch = _collator(ocr_tokenizer, mim_strategy="random")(_rows())
    assert ((batch["mim_labels"] != -100).sum(dim=1) == int(0.4 * GRID * GRID)).all()  # the empty figure too


def test_targets_come_from_the_layout_functions(ocr_tokenizer):
    rows = _rows()
    batch = _collator(ocr_tokenizer)(rows)
    expected = patch_labels(rows[0]["layout_boxes"], rows[0]["layout_classes"], GRID)
    assert torch.equal(batch["patch_labels"][0], torch.from_numpy(expected).float())
    nodes = np.asarray(rows[0]["layout_boxes"][:3])  # max_nodes=3: the fourth node is left out
    assert batch["node_patch_map"].shape == (2, 3, GRID * GRID)
    assert torch.equal(batch["node_patch_map"][0], torch.from_numpy(patch_grid(nodes, GRID)).float())
    assert not batch["node_patch_map"][1].any()
    real = int(batch["attention_mask"][0].sum())
    token_boxes = batch["bbox"][0, 1 : real - 1].numpy()
    labels = token_nodes(token_boxes, nodes, GRID)
    assert torch.equal(batch["tna_labels"][0, 1 : real - 1], torch.from_numpy(np.where(labels < 0, -100, labels)))
    assert batch["tna_labels"][0, 0] == -100 and (batch["tna_labels"][0, real - 1 :] == -100).all()


def test_the_masks_are_seeded(ocr_tokenizer):
    first, again = _collator(ocr_tokenizer, seed=3)(_rows()), _collator(ocr_tokenizer, seed=3)(_rows())
    other = _collator(ocr_tokenizer, seed=4)(_rows())
    for key in ("input_ids", "mlm_labels", "mim_labels"):
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["mim_labels"], other["mim_labels"])


def test_a_figure_without_words_or_elements_still_trains(ocr_tokenizer):
    collator = _collator(ocr_tokenizer)
    batch = collator([_rows()[1], _rows()[1]])
    assert batch["input_ids"].shape == (2, 2) and (batch["mlm_labels"] == -100).all()
    assert (batch["mim_labels"] == -100).all() and batch["node_patch_map"].shape == (2, 0, GRID * GRID)
    torch.manual_seed(0)
    model = PatentMMEForPreTraining(collator.config)
    output = model(**batch)
    assert output.mlm_loss is None and output.mim_loss is None and output.tna_loss is None
    assert torch.isfinite(output.loss) and torch.isfinite(output.pch_loss)
    output.loss.backward()
    mixed = model(**collator(_rows()))
    assert all(torch.isfinite(getattr(mixed, f"{task}_loss")) for task in ("mlm", "mim", "pch", "tna"))


def test_cached_visual_tokens_are_used_and_a_foreign_cache_is_refused(ocr_tokenizer):
    collator = _collator(ocr_tokenizer, mim_strategy="random")
    rows = _rows()
    cached = [{**row, "visual_tokens": list(range(64))} for row in rows]
    batch = collator(cached)
    chosen = batch["mim_labels"] != -100
    assert torch.equal(batch["mim_labels"][chosen], torch.arange(64).repeat(2, 1)[chosen])
    with pytest.raises(ValueError) as error:
        collator([{**rows[0], "visual_tokens": [1] * 576}])
    assert "Figure 'A': its visual_tokens ((576,)" in str(error.value)
    assert "a cache from another tokenizer or image size" in str(error.value)
    with pytest.raises(ValueError, match="ids 0-99"):
        collator([{**rows[0], "visual_tokens": [0] * 63 + [99]}])


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(ocr_tokenizer):
    config = _config(ocr_tokenizer)
    with pytest.raises(ValueError, match="reads 384-px figures in 16-px patches; the model 128-px"):
        PatentMMECollator(ocr_tokenizer, config, PatentMMEVisualTokenizer.random(0, TINY_VQGAN))
    wide = PatentMMEVisualTokenizer.random(0, {**TINY_VQGAN, "num_embeddings": 32}, image_size=128)
    with pytest.raises(ValueError, match="has 32 codes; the model's MIM head 65 classes"):
        PatentMMECollator(ocr_tokenizer, config, wide)


def test_a_figure_whose_image_cannot_be_loaded_is_left_out_and_named(ocr_tokenizer, caplog):
    from helpers.damaged import damaged_images

    collator = _collator(ocr_tokenizer)
    good, other = _rows()
    damaged = {**other, "image_id": "damaged", "image": {"bytes": damaged_images()["SyntaxError"], "path": None}}
    with caplog.at_level("WARNING"):
        batch = collator([damaged, good])
    assert batch["input_ids"].shape[0] == 1 and collator.num_skipped == 1
    assert "Figure 'damaged' skipped: its image cannot be loaded (" in caplog.text
    with pytest.raises(ValueError, match="No figure of this batch of 1 could be loaded"):
        collator([damaged])


def test_visual_tokens_are_computed_once_per_figure(ocr_tokenizer):
    collator = _collator(ocr_tokenizer, mim_strategy="random")
    first = collator(_rows())
    expected = collator.visual_tokenizer.encode(first["pixel_values"])
    collator.visual_tokenizer = None  # the second epoch needs no tokenizer: the ids of A and B are kept
    again = collator(_rows())
    chosen = again["mim_labels"] != -100
    assert torch.equal(again["mim_labels"][chosen], expected[chosen])

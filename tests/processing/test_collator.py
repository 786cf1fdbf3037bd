"""PatentLMMCollator: TRL prompt/completion rows -> batches whose labels cover exactly the description + end token."""

from __future__ import annotations

import pytest
import torch

from processing import build_completion, build_prompt, build_target, escape_description
from processing.collator import NUM_TRUNCATED_KEY, PatentLMMCollator
from processing.constants import IGNORE_INDEX

WORDS = [["FIG.", "12", "(21)"], []]  # the second figure has no OCR words
BOXES = [[[10, 10, 50, 20], [60, 10, 80, 20], [100, 300, 140, 320]], []]


def make_rows(figures, prompt_format: str = "vicuna_v1") -> list[dict]:
    """Two real figures with descriptions of different lengths (one contains '<' and '>', which get escaped), as
    prompt/completion rows of `prompt_format`."""
    entries = [figures["US20250204297A1__12"], figures["US20250204297A1__13"]]
    descriptions = ["FIG. 12 is a <view> of FIG. 11.", entries[1]["brief_description"]]
    return [
        {
            "prompt": build_prompt("brief", prompt_format),
            "completion": build_completion(description, prompt_format),
            "description": description,  # not read by the collator
            "image": entry["path"],
            "ocr_words": words,
            "ocr_boxes": boxes,
        }
        for entry, description, words, boxes in zip(entries, descriptions, WORDS, BOXES)
    ]


@pytest.fixture
def rows(figures) -> list[dict]:
    return make_rows(figures)


@pytest.mark.parametrize("prompt_format", ["plain", "vicuna_v1"])
def test_labels_cover_exactly_the_description_and_end_token(tiny, figures, prompt_format):
    _, processor = tiny
    rows = make_rows(figures, prompt_format)
    batch = PatentLMMCollator(processor)(rows)
    tokenizer = processor.tokenizer
    prompt = build_prompt("brief", prompt_format)
    for i, row in enumerate(rows):
        # The prompt alone, expanded by the processor: every one of its positions (image placeholders included) is
        # masked; then come the target tokens, then right padding, also masked.
        alone = processor(
            images=[row["image"]], text=[prompt], ocr_words=[row["ocr_words"]], ocr_boxes=[row["ocr_boxes"]]
        )
        prompt_ids = alone["input_ids"][0]
        answer = escape_description(row["description"])
        target = tokenizer(build_target(answer, prompt_format), add_special_tokens=False)["input_ids"]
        target = torch.tensor([*target, tokenizer.eos_token_id])
        n_prompt, n_target = len(prompt_ids), len(target)
        length = int(batch["attention_mask"][i].sum())
        assert length == n_prompt + n_target
        assert torch.equal(batch["input_ids"][i, :n_prompt], prompt_ids)
        assert torch.equal(batch["input_ids"][i, n_prompt:length], target)
        expected = torch.full_like(batch["labels"][i], IGNORE_INDEX)
        expected[n_prompt:length] = target
        assert torch.equal(batch["labels"][i], expected)
        assert not batch["attention_mask"][i, length:].any()  # right padding
        image_positions = batch["input_ids"][i] == processor.image_token_id
        assert int(image_positions.sum()) == processor.num_image_features(int(batch["ocr_attention_mask"][i].sum()))
        assert (batch["labels"][i][image_positions] == IGNORE_INDEX).all()
    assert batch["pixel_values"].shape[0] == batch["ocr_input_ids"].shape[0] == 2


def test_a_completion_without_its_end_token_gets_one(tiny, rows):
    _, processor = tiny
    end_token = processor.tokenizer.eos_token
    bare = [{**row, "completion": row["completion"].removesuffix(end_token)} for row in rows]
    assert bare[0]["completion"] != rows[0]["completion"]
    collator = PatentLMMCollator(processor)
    assert torch.equal(collator(bare)["labels"], collator(rows)["labels"])


def test_long_samples_lose_description_tokens_never_image_tokens(tiny, rows):
    _, processor = tiny
    full = PatentLMMCollator(processor)(rows)
    lengths = full["attention_mask"].sum(dim=1)
    longest = int(lengths.argmax())
    max_length = int(lengths.max()) - 3
    collator = PatentLMMCollator(processor, max_length=max_length, report_truncation=True)
    cut = collator(rows)
    assert cut["input_ids"].shape[1] == max_length
    assert int(cut[NUM_TRUNCATED_KEY]) == collator.num_truncated == int((lengths > max_length).sum()) >= 1
    image_token = processor.image_token_id
    assert torch.equal((cut["input_ids"] == image_token).sum(1), (full["input_ids"] == image_token).sum(1))
    assert torch.equal(cut["labels"][longest], full["labels"][longest, :max_length])
    assert collator.num_samples == 2


def test_a_prompt_longer_than_max_length_raises(tiny, rows):
    _, processor = tiny
    with pytest.raises(ValueError, match="never cut"):
        PatentLMMCollator(processor, max_length=100)(rows)


def test_official_ocr_tokens_match_words_and_boxes(tiny, rows):
    _, processor = tiny
    from processing.ocr_tokens import tokenize_ocr

    official = []
    for row in rows:
        ids, boxes = tokenize_ocr(processor.ocr_tokenizer, row["ocr_words"], row["ocr_boxes"])
        official.append({**row, "ocr_words": None, "ocr_boxes": None, "ocr_input_ids": ids, "ocr_bbox": boxes})
    collator = PatentLMMCollator(processor)
    by_words, by_tokens = collator(rows), collator(official)
    for key in by_words:
        assert torch.equal(by_words[key], by_tokens[key]), key


def test_official_ocr_tokens_win_over_words_row_by_row(tiny, rows):
    """A dataset built with the official ocr.json carries both; training must use the paper's OCR (the token ids)
    wherever a row has them, and the words elsewhere."""
    _, processor = tiny
    from processing.ocr_tokens import tokenize_ocr

    official_ids = [0, 11, 12, 13, 2]  # not the tokenisation of the row's words
    mixed = [
        {**rows[0], "ocr_input_ids": official_ids, "ocr_bbox": [[0, 0, 0, 0]] * 5},
        {**rows[1], "ocr_input_ids": None, "ocr_bbox": None},
    ]
    batch = PatentLMMCollator(processor)(mixed)
    lengths = batch["ocr_attention_mask"].sum(dim=1).tolist()
    assert batch["ocr_input_ids"][0, : lengths[0]].tolist() == official_ids
    words_ids, _ = tokenize_ocr(processor.ocr_tokenizer, rows[1]["ocr_words"], rows[1]["ocr_boxes"])
    assert batch["ocr_input_ids"][1, : lengths[1]].tolist() == words_ids


def test_images_column_and_bad_rows(tiny, rows):
    _, processor = tiny
    collator = PatentLMMCollator(processor)
    listed = [{**{k: v for k, v in row.items() if k != "image"}, "images": [row["image"]]} for row in rows]
    assert torch.equal(collator(listed)["input_ids"], collator(rows)["input_ids"])
    with pytest.raises(ValueError, match="one figure per sample"):
        collator([{**listed[0], "images": [rows[0]["image"]] * 2}])
    without_completion = {key: value for key, value in rows[0].items() if key != "completion"}
    with pytest.raises(ValueError, match="Row 1 has no such column for 'completion'"):
        collator([rows[1], without_completion])
    messages = [{"role": "user", "content": "Write a brief description."}]
    with pytest.raises(ValueError, match="Row 0 has a list for 'prompt'.*to_prompt_completion"):
        collator([{**rows[0], "prompt": messages}])

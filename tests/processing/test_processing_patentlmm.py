"""Behaviour of `PatentLMMProcessor` with real parts: the bundled USPTO figures, the real Tesseract, the real
LLaMA-style and LayoutLMv3 tokenizers of the tiny model, saving/loading as remote code, the tiny model's forward,
and (gated) loading the saved processor in transformers 4.x.

Tesseract runs on each figure at most twice in this module (module-scoped fixtures).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import TRANSFORMERS4_ENV, find_transformers4_python
from processing.constants import IGNORE_INDEX, OCR_PAD_BOX
from processing.images import ImageTooLargeError, expand_to_square, load_image
from processing.ocr_tokens import tokenize_ocr
from processing.processing_patentlmm import PatentLMMProcessor
from processing.prompts import CHAT_TEMPLATES, build_messages, build_prompt, escape_description, tokenize_prompt

FIG8 = "US20250204297A1__8"  # 1125 x 2618 (portrait), ~12 words
FIG13 = "US20250204297A1__13"  # 1953 x 1630 (landscape), "Figure 13"
NUM_PATCHES = 577  # CLS + (384 / 16) ** 2
MODEL_INPUTS = {"input_ids", "attention_mask", "pixel_values", "ocr_input_ids", "ocr_bbox", "ocr_attention_mask"}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model(tiny):
    return tiny[0]


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def paths(figures):
    return {FIG8: figures[FIG8]["path"], FIG13: figures[FIG13]["path"]}


@pytest.fixture(scope="module")
def words_and_boxes(processor, paths):
    """Tesseract's words and boxes per figure, once."""
    if shutil.which("tesseract") is None:
        pytest.skip("the tesseract binary is not installed")
    return {name: processor.ocr(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def tesseract_batch(processor, paths):
    """A batch of two real figures OCR'd by the processor itself (different OCR lengths, different prompts)."""
    if shutil.which("tesseract") is None:
        pytest.skip("the tesseract binary is not installed")
    return processor(images=[paths[FIG8], paths[FIG13]], text=[build_prompt("brief"), build_prompt("detailed")])


def _precomputed(words_and_boxes, *names):
    return {
        "ocr_words": [words_and_boxes[name][0] for name in names],
        "ocr_boxes": [words_and_boxes[name][1] for name in names],
    }


def _assert_same(left, right, keys=None):
    keys = set(left.keys()) if keys is None else set(keys)
    assert set(left.keys()) >= keys and set(right.keys()) >= keys
    for key in sorted(keys):
        assert left[key].shape == right[key].shape, key
        assert left[key].dtype == right[key].dtype, key
        assert torch.equal(left[key], right[key]), key


# ---------------------------------------------------------------------------------------------- placeholders


def test_image_token_expands_to_ocr_length_minus_one_plus_577(tesseract_batch, processor, model, words_and_boxes):
    image_id = model.config.image_token_id
    assert image_id == processor.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    ocr_lengths = tesseract_batch["ocr_attention_mask"].sum(dim=1).tolist()
    # Independently: the LayoutLMv3 tokenisation of Tesseract's words.
    expected_lengths = [len(tokenize_ocr(processor.ocr_tokenizer, *words_and_boxes[name])[0]) for name in (FIG8, FIG13)]
    assert ocr_lengths == expected_lengths
    assert ocr_lengths[0] != ocr_lengths[1]  # the two samples really differ
    for row, (prompt, n_ocr) in enumerate(
        zip([build_prompt("brief"), build_prompt("detailed")], ocr_lengths, strict=True)
    ):
        ids = tesseract_batch["input_ids"][row][tesseract_batch["attention_mask"][row].bool()].tolist()
        positions = [i for i, token in enumerate(ids) if token == image_id]
        assert len(positions) == n_ocr - 1 + NUM_PATCHES == processor.num_image_features(n_ocr)
        assert positions == list(range(positions[0], positions[0] + len(positions)))  # one contiguous run
        plain = tokenize_prompt(processor.tokenizer, prompt)  # the original's rule (test_processing_prompts.py)
        assert plain.count(image_id) == 1
        at = plain.index(image_id)
        assert ids == plain[:at] + [image_id] * len(positions) + plain[at + 1 :]
        assert ids[0] == processor.tokenizer.bos_token_id


def test_output_keys_shapes_and_dtypes(tesseract_batch, processor):
    assert set(tesseract_batch.keys()) == MODEL_INPUTS  # no labels without suffix
    assert set(processor.model_input_names) == MODEL_INPUTS
    assert tesseract_batch["pixel_values"].shape == (2, 3, 384, 384)
    assert tesseract_batch["pixel_values"].dtype == torch.float32
    length = tesseract_batch["ocr_input_ids"].shape[1]
    assert tesseract_batch["ocr_bbox"].shape == (2, length, 4)
    assert tesseract_batch["ocr_attention_mask"].shape == (2, length)
    assert tesseract_batch["input_ids"].shape == tesseract_batch["attention_mask"].shape
    assert tesseract_batch["input_ids"].shape[0] == 2
    for key in ("input_ids", "attention_mask", "ocr_input_ids", "ocr_bbox", "ocr_attention_mask"):
        assert tesseract_batch[key].dtype == torch.long, key


def test_ocr_tensors_are_right_padded_with_pad_id_zero_boxes_and_mask(tesseract_batch, processor, words_and_boxes):
    ocr_ids, boxes, mask = (tesseract_batch[k] for k in ("ocr_input_ids", "ocr_bbox", "ocr_attention_mask"))
    pad_id = processor.ocr_tokenizer.pad_token_id
    assert pad_id == 1
    for row, name in enumerate((FIG8, FIG13)):
        ids, token_boxes = tokenize_ocr(processor.ocr_tokenizer, *words_and_boxes[name])
        n, missing = len(ids), ocr_ids.shape[1] - len(ids)
        assert ocr_ids[row, :n].tolist() == ids and boxes[row, :n].tolist() == token_boxes
        assert ocr_ids[row, n:].tolist() == [pad_id] * missing
        assert boxes[row, n:].tolist() == [OCR_PAD_BOX] * missing
        assert mask[row].tolist() == [1] * n + [0] * missing
    assert mask[0].sum() > mask[1].sum()  # FIG. 8 has more words: FIG. 13 is the padded one
    assert (mask[1] == 0).any()


def test_text_is_left_padded_by_default_with_the_pad_id(tesseract_batch, processor):
    assert processor.tokenizer.padding_side == "left"
    mask = tesseract_batch["attention_mask"]
    short = int(mask.sum(dim=1).argmin())
    pad = int((mask[short] == 0).sum())
    assert pad > 0
    assert mask[short].tolist() == [0] * pad + [1] * (mask.shape[1] - pad)
    assert tesseract_batch["input_ids"][short, :pad].tolist() == [processor.tokenizer.pad_token_id] * pad


# ---------------------------------------------------------------------------------------------- pixel values


def test_pixel_values_pad_the_figure_with_the_normalised_mean(tesseract_batch, processor, paths):
    image_processor = processor.image_processor
    assert list(image_processor.image_mean) == [0.5] * 3
    fill = tuple(int(255 * m) for m in image_processor.image_mean)
    assert fill == (127, 127, 127)
    # The fill colour after rescale + normalise, computed by the same image processor on a plain fill image ...
    fill_value = image_processor(Image.new("RGB", (8, 8), fill), return_tensors="pt")["pixel_values"][0, 0, 0, 0]
    # ... which is (127 / 255 - 0.5) / 0.5 in float32, just under zero (not 0.0: 127 is not exactly mid-grey).
    expected = (np.float32(127 / 255) - np.float32(0.5)) / np.float32(0.5)
    assert fill_value.item() == pytest.approx(float(expected), abs=1e-7)
    assert fill_value.item() == pytest.approx(-0.0039215686, abs=1e-7)

    portrait = tesseract_batch["pixel_values"][0]  # FIG. 8: 1125 x 2618 -> bands left and right
    # Left band: 746 / 2618 * 384 = 109.4 columns; right band from (746 + 1125) / 2618 * 384 = 274.4.
    assert (portrait[:, :, :105] == fill_value).all()
    assert (portrait[:, :, 280:] == fill_value).all()
    drawing = portrait[:, :, 112:272]
    assert (drawing == 1.0).float().mean() > 0.5  # mostly white paper (255 -> 1.0) ...
    assert drawing.min() < -0.5  # ... with black lines

    landscape = tesseract_batch["pixel_values"][1]  # FIG. 13: 1953 x 1630 -> bands above and below
    band = (1953 - 1630) // 2 * 384 / 1953  # 31.7 rows
    assert (landscape[:, : int(band) - 2, :] == fill_value).all()
    assert (landscape[:, -(int(band) - 2) :, :] == fill_value).all()
    assert not (landscape[:, :, :5] == fill_value).all()  # no side bands: the drawing's white reaches the edge


def test_pixel_values_are_the_image_processor_on_the_padded_square(tesseract_batch, processor, paths):
    for row, name in enumerate((FIG8, FIG13)):
        square = expand_to_square(load_image(paths[name]), (127, 127, 127))
        assert square.size[0] == square.size[1] == max(load_image(paths[name]).size)
        reference = processor.image_processor(square, return_tensors="pt")["pixel_values"][0]
        assert torch.equal(tesseract_batch["pixel_values"][row], reference)


# ---------------------------------------------------------------------------------------------- precomputed OCR


def test_precomputed_words_give_the_same_tensors_as_tesseract(tesseract_batch, processor, paths, words_and_boxes):
    out = processor(
        images=[paths[FIG8], paths[FIG13]],
        text=[build_prompt("brief"), build_prompt("detailed")],
        **_precomputed(words_and_boxes, FIG8, FIG13),
    )
    _assert_same(out, tesseract_batch, MODEL_INPUTS)


def test_precomputed_words_accept_every_image_input_kind(processor, paths, words_and_boxes):
    words, boxes = words_and_boxes[FIG8]
    kwargs = {"text": build_prompt("brief"), "ocr_words": [words], "ocr_boxes": [boxes]}
    reference = processor(images=paths[FIG8], **kwargs)
    data = paths[FIG8].read_bytes()
    with Image.open(paths[FIG8]) as lazy:
        from_pil = processor(images=lazy, **kwargs)
    for out in (
        processor(images=str(paths[FIG8]), **kwargs),
        processor(images=data, **kwargs),
        processor(images=[data], **kwargs),
        processor(images=np.asarray(Image.open(paths[FIG8]).convert("L")), **kwargs),
        from_pil,
    ):
        _assert_same(out, reference, MODEL_INPUTS)


def test_precomputed_official_ocr_entry(processor, paths, words_and_boxes):
    """`ocr=` takes values of the official ocr.json (batch of one, padded, with attention_mask)."""
    names = (FIG8, FIG13)
    entries = []
    for name in names:
        encoding = processor.ocr_tokenizer(
            [words_and_boxes[name][0]], boxes=[words_and_boxes[name][1]], padding="max_length", max_length=40
        )
        entries.append(json.loads(json.dumps({k: encoding[k] for k in ("input_ids", "attention_mask", "bbox")})))
    assert entries[0]["attention_mask"][0][-1] == 0  # padding to strip
    texts = [build_prompt("brief"), build_prompt("detailed")]
    from_official = processor(images=[paths[n] for n in names], text=texts, ocr=entries)
    from_words = processor(images=[paths[n] for n in names], text=texts, **_precomputed(words_and_boxes, *names))
    _assert_same(from_official, from_words, MODEL_INPUTS)
    # One figure: a single dict is accepted.
    single = processor(images=paths[FIG13], text=texts[1], ocr=entries[1])
    assert single["ocr_input_ids"].tolist() == [tokenize_ocr(processor.ocr_tokenizer, *words_and_boxes[FIG13])[0]]


def test_precomputed_paths_never_start_tesseract(processor, paths, words_and_boxes, tmp_path, monkeypatch):
    import pytesseract

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "tesseract")
    official = {"input_ids": [[0, 11295, 2]], "attention_mask": [[1, 1, 1]], "bbox": [[[0] * 4, [1, 2, 3, 4], [0] * 4]]}
    out = processor(images=paths[FIG8], text=build_prompt("brief"), ocr=official)
    assert out["ocr_input_ids"].tolist() == [[0, 11295, 2]]
    out = processor(images=paths[FIG8], text=build_prompt("brief"), **_precomputed(words_and_boxes, FIG8))
    assert out["ocr_input_ids"].shape[1] > 2


def test_mixed_batch_ocrs_only_the_figures_without_words(processor, paths, words_and_boxes, tesseract_batch):
    """`None` in ocr_words means "run Tesseract on this one"; an empty list means "no words"."""
    words, boxes = words_and_boxes[FIG8]
    out = processor(
        images=[paths[FIG8], paths[FIG13]],
        text=[build_prompt("brief"), build_prompt("detailed")],
        ocr_words=[words, None],
        ocr_boxes=[boxes, None],
    )
    _assert_same(out, tesseract_batch, MODEL_INPUTS)
    empty = processor(images=paths[FIG8], text=build_prompt("brief"), ocr_words=[[]], ocr_boxes=[[]])
    assert empty["ocr_input_ids"].tolist() == [[0, 2]]
    assert int((empty["input_ids"] == processor.image_token_id).sum()) == 2 - 1 + NUM_PATCHES


# ---------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_suffix_labels_cover_only_the_suffix_and_eos(processor, paths, words_and_boxes, padding_side):
    suffixes = ["FIG. 8 is a view of FIG. 7 in a compressed working position.", "A pneumatic actuator."]
    out = processor(
        images=[paths[FIG8], paths[FIG13]],
        text=[build_prompt("brief"), build_prompt("detailed")],
        suffix=suffixes,
        padding_side=padding_side,
        **_precomputed(words_and_boxes, FIG8, FIG13),
    )
    assert set(out.keys()) == MODEL_INPUTS | {"labels"}
    ids, labels, mask = out["input_ids"], out["labels"], out["attention_mask"]
    assert labels.shape == ids.shape and labels.dtype == torch.long
    eos = processor.tokenizer.eos_token_id
    pads = []
    for row, suffix in enumerate(suffixes):
        target = processor.tokenizer(suffix, add_special_tokens=False)["input_ids"] + [eos]
        kept = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert len(kept) == len(target)
        assert kept == list(range(kept[0], kept[0] + len(target)))  # one contiguous span
        assert labels[row, kept].tolist() == ids[row, kept].tolist() == target
        # Everything else -- padding, prompt and every image placeholder -- is ignored.
        assert (labels[row][mask[row] == 0] == IGNORE_INDEX).all()
        assert (labels[row][ids[row] == processor.image_token_id] == IGNORE_INDEX).all()
        real = mask[row].nonzero().flatten().tolist()
        assert kept[-1] == real[-1]  # the target ends the real tokens (the eos is the last one)
        pad = int((mask[row] == 0).sum())
        pads.append(pad)
        if padding_side == "left":
            assert mask[row].tolist() == [0] * pad + [1] * (len(mask[row]) - pad)
            assert kept[-1] == ids.shape[1] - 1
        else:
            assert mask[row].tolist() == [1] * (len(mask[row]) - pad) + [0] * pad
            assert ids[row, len(real) :].tolist() == [processor.tokenizer.pad_token_id] * pad
    assert max(pads) > 0 and min(pads) == 0


def test_padding_side_argument_is_checked(processor, paths, words_and_boxes):
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right', got 'middle'"):
        processor(
            images=paths[FIG8],
            text=build_prompt("brief"),
            padding_side="middle",
            **_precomputed(words_and_boxes, FIG8),
        )


# ---------------------------------------------------------------------------------------------- count errors


@pytest.mark.parametrize(
    ("prompt", "count"),
    [("Write a brief description for this patent image.", 0), ("<image> and <image> again", 2)],
    ids=["no-image-token", "two-image-tokens"],
)
def test_image_token_count_must_match_the_images(processor, paths, words_and_boxes, prompt, count):
    with pytest.raises(ValueError, match=rf"Prompt 0 contains {count} <image> tokens but 1 image\(s\)"):
        processor(images=paths[FIG8], text=prompt, **_precomputed(words_and_boxes, FIG8))


def test_two_prompts_for_one_image_name_both_counts(processor, paths, words_and_boxes):
    with pytest.raises(ValueError, match=r"Got 2 prompts for 1 images"):
        processor(images=paths[FIG8], text=[build_prompt("brief")] * 2, **_precomputed(words_and_boxes, FIG8))


def test_image_token_in_a_text_only_prompt_is_rejected(processor):
    with pytest.raises(ValueError, match=r"Prompt 1 contains 1 <image> tokens but 0 image\(s\)"):
        processor(text=["no figure here", build_prompt("brief")])


def test_argument_errors(processor, paths, words_and_boxes):
    words, boxes = words_and_boxes[FIG8]
    prompt = build_prompt("brief")
    with pytest.raises(ValueError, match="Pass images, text, or both"):
        processor()
    with pytest.raises(TypeError, match=r"Unexpected arguments: \['padding'\]"):
        processor(text="hello", padding=True)
    with pytest.raises(ValueError, match="ocr_words were given without ocr_boxes"):
        processor(images=paths[FIG8], text=prompt, ocr_words=[words])
    with pytest.raises(ValueError, match="ocr_boxes were given without ocr_words"):
        processor(images=paths[FIG8], text=prompt, ocr_boxes=[boxes])
    with pytest.raises(ValueError, match="Got 1 ocr_words entries for 2 images"):
        processor(images=[paths[FIG8], paths[FIG13]], text=[prompt] * 2, ocr_words=[words], ocr_boxes=[boxes, boxes])
    with pytest.raises(ValueError, match="ocr_words was given without images"):
        processor(text="hello", ocr_words=[words])
    with pytest.raises(ValueError, match="Got 2 suffixes for 1 prompts"):
        processor(text="hello", suffix=["a", "b"])
    with pytest.raises(ValueError, match=r"OCR boxes\[0\] = \[0, 0, 2000, 10\]"):
        processor(images=paths[FIG8], text=prompt, ocr_words=[["x"]], ocr_boxes=[[[0, 0, 2000, 10]]])


def test_image_size_cap_is_applied_before_ocr(processor, paths, monkeypatch):
    monkeypatch.setattr(processor, "max_image_pixels", 1_000_000)
    with pytest.raises(ImageTooLargeError, match=r"1125x2618: padded to a square it is 2618x2618 = 6,853,924 pixels"):
        processor(images=paths[FIG8], text=build_prompt("brief"))
    with pytest.raises(ImageTooLargeError):
        processor.ocr(paths[FIG8])


def test_an_extreme_aspect_ratio_is_refused_before_it_is_padded(processor, tmp_path):
    """A 1 x 30000 PNG of about 140 bytes would become a 30000 x 30000 square (6.5 GB resident in the issue)."""
    from PIL import Image

    strip = tmp_path / "strip.png"
    Image.new("1", (1, 30_000), 1).save(strip)
    with pytest.raises(ImageTooLargeError, match=r"1x30000: padded to a square it is 30000x30000 = 900,000,000"):
        processor(images=str(strip), text=build_prompt("brief"), ocr_words=[[]], ocr_boxes=[[]])


def test_text_only_and_images_only_calls(processor, paths, words_and_boxes):
    text_only = processor(text=["short", "a longer prompt here"])
    assert set(text_only.keys()) == {"input_ids", "attention_mask"}
    short = processor.tokenizer("short")["input_ids"]
    assert short[0] == processor.tokenizer.bos_token_id
    pad = text_only["input_ids"].shape[1] - len(short)
    assert pad > 0
    assert text_only["input_ids"][0].tolist() == [processor.tokenizer.pad_token_id] * pad + short  # left padding
    assert text_only["attention_mask"][0].tolist() == [0] * pad + [1] * len(short)
    assert text_only["attention_mask"][1].tolist() == [1] * text_only["input_ids"].shape[1]
    images_only = processor(images=paths[FIG8], **_precomputed(words_and_boxes, FIG8))
    assert set(images_only.keys()) == {"pixel_values", "ocr_input_ids", "ocr_bbox", "ocr_attention_mask"}


def test_constructor_checks(processor):
    with pytest.raises(ValueError, match="has no '<image>' token"):
        PatentLMMProcessor(processor.image_processor, processor.ocr_tokenizer, processor.ocr_tokenizer)
    with pytest.raises(ValueError, match="vision_feature_select_strategy must be 'patch' or 'cls_patch'"):
        PatentLMMProcessor(
            processor.image_processor, processor.tokenizer, processor.ocr_tokenizer, vision_feature_select_strategy="x"
        )


# ---------------------------------------------------------------------------------------------- decoding


def test_batch_decode_unescapes_and_skips_special_tokens(processor):
    tokenizer = processor.tokenizer
    text = escape_description("FIG. 3 <image> shows the <b> hinge")
    assert text == "FIG. 3 [[image]] shows the [[b]] hinge"
    row = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    other = [processor.image_token_id] + tokenizer("plain", add_special_tokens=False)["input_ids"]
    assert processor.batch_decode([row, other]) == ["FIG. 3 <image> shows the <b> hinge", "plain"]
    assert processor.batch_decode(torch.tensor([row])) == ["FIG. 3 <image> shows the <b> hinge"]
    assert processor.decode(row) == "FIG. 3 <image> shows the <b> hinge"
    assert processor.batch_decode([row], unescape=False) == [tokenizer.decode(row, skip_special_tokens=True)]
    assert "[[image]]" in processor.decode(row, unescape=False)
    assert processor.decode(row, skip_special_tokens=False).startswith("<s>")


# ---------------------------------------------------------------------------------------------- save / load


def test_saved_folder_layout(tiny_dir):
    for name in (
        "processor_config.json",
        "preprocessor_config.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "additional_chat_templates/plain.jinja",
        "additional_chat_templates/original_inference.jinja",
        "ocr_tokenizer/tokenizer_config.json",
        "processing_patentlmm.py",
        "images.py",
        "prepared_figures.py",
        "ocr_base.py",
        "ocr_engines.py",
        "ocr_tesseract.py",
        "ocr_pp.py",
        "ocr_rapidocr.py",
        "ocr_drawing.py",
        "ocr_tokens.py",
        "prompts.py",
        "constants.py",
    ):
        assert (tiny_dir / name).is_file(), name
    config = json.loads((tiny_dir / "processor_config.json").read_text())
    assert config["auto_map"] == {"AutoProcessor": "processing_patentlmm.PatentLMMProcessor"}
    assert config["processor_class"] == "PatentLMMProcessor"
    assert config["num_image_patches"] == NUM_PATCHES and config["max_ocr_tokens"] == 512
    assert config["image_token"] == "<image>" and config["vision_feature_select_strategy"] == "patch"
    assert (tiny_dir / "chat_template.jinja").read_text() == CHAT_TEMPLATES["vicuna_v1"]
    assert (tiny_dir / "additional_chat_templates/plain.jinja").read_text() == CHAT_TEMPLATES["plain"]
    ocr_config = json.loads((tiny_dir / "ocr_tokenizer/tokenizer_config.json").read_text())
    assert ocr_config["tokenizer_class"].startswith("LayoutLMv3Tokenizer")
    root_config = json.loads((tiny_dir / "tokenizer_config.json").read_text())
    assert "<image>" in root_config["additional_special_tokens"]  # the name transformers 4.x reads
    assert not isinstance(root_config.get("extra_special_tokens"), list)
    # The copied module files import only their siblings (remote code must not need the repository).
    source = (tiny_dir / "processing_patentlmm.py").read_text()
    assert "from .images import" in source and "modeling_patentlmm" not in source


def _auto_load(folder):
    """In this process `import patentlmm` has registered PatentLMMProcessor, so AutoProcessor returns that class;
    loading the folder's own copied code is checked in fresh processes (test_modeling_patentlmm and the 4.57 test)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(folder, trust_remote_code=True)


@pytest.fixture(scope="module")
def auto_loaded(tiny_dir):
    return _auto_load(tiny_dir)


def test_auto_processor_loads_remote_code_with_settings_and_templates(auto_loaded, processor):
    assert type(auto_loaded).__name__ == "PatentLMMProcessor"
    assert auto_loaded._settings() == processor._settings()
    assert auto_loaded.image_token_id == processor.image_token_id
    assert auto_loaded.chat_templates == CHAT_TEMPLATES
    assert auto_loaded.tokenizer.padding_side == "left"
    assert auto_loaded.ocr_tokenizer.pad_token_id == processor.ocr_tokenizer.pad_token_id
    for name in ("plain", "original_inference"):
        kwargs = {"chat_template": name, "add_generation_prompt": True}
        assert auto_loaded.apply_chat_template(build_messages("brief"), **kwargs) == build_prompt("brief", name)
    assert auto_loaded.apply_chat_template(build_messages("detailed"), add_generation_prompt=True) == (
        "<s> " + build_prompt("detailed")
    )


def test_auto_processor_round_trip_gives_identical_outputs(auto_loaded, processor, paths, words_and_boxes):
    kwargs = {
        "images": [paths[FIG8], paths[FIG13]],
        "text": [build_prompt("brief"), build_prompt("detailed", "original_inference")],
        "suffix": ["FIG. 8 [[b]] is a view.", "FIG. 13 shows the actuator."],
        **_precomputed(words_and_boxes, FIG8, FIG13),
    }
    ours, theirs = processor(**kwargs), auto_loaded(**kwargs)
    _assert_same(theirs, ours, MODEL_INPUTS | {"labels"})
    assert auto_loaded.batch_decode(ours["input_ids"][:, -8:]) == processor.batch_decode(ours["input_ids"][:, -8:])


def test_non_default_settings_survive_save_and_load(processor, tmp_path, paths, words_and_boxes):
    custom = PatentLMMProcessor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        ocr_tokenizer=processor.ocr_tokenizer,
        vision_feature_select_strategy="cls_patch",
        max_ocr_tokens=8,
        ocr_lang="eng",
        tesseract_config="--psm 11",
        max_image_pixels=None,
        num_ocr_workers=3,
        pad_to_square=False,
    )
    custom.save_pretrained(tmp_path / "custom")
    local, remote = PatentLMMProcessor.from_pretrained(tmp_path / "custom"), _auto_load(tmp_path / "custom")
    assert type(local) is PatentLMMProcessor
    for loaded in (local, remote):
        assert loaded._settings() == {
            "num_image_patches": NUM_PATCHES,
            "vision_feature_select_strategy": "cls_patch",
            "max_ocr_tokens": 8,
            "image_token": "<image>",
            "max_image_pixels": None,
            "num_ocr_workers": 3,
            "pad_to_square": False,
            # from ocr_lang/tesseract_config
            "ocr_engine": {"engine": "tesseract", "lang": "eng", "config": "--psm 11"},
        }
        assert loaded.chat_templates == CHAT_TEMPLATES
        out = loaded(images=paths[FIG8], text=build_prompt("brief"), **_precomputed(words_and_boxes, FIG8))
        assert out["ocr_input_ids"].shape == (1, 8)  # truncated to max_ocr_tokens, </s> kept
        assert out["ocr_input_ids"][0, -1].item() == processor.ocr_tokenizer.sep_token_id
        assert int((out["input_ids"] == processor.image_token_id).sum()) == 8 + NUM_PATCHES  # cls_patch keeps CLS


# ---------------------------------------------------------------------------------------------- model integration


def test_tiny_model_forward_on_processor_output(model, processor, paths, words_and_boxes):
    out = processor(
        images=[paths[FIG8], paths[FIG13]],
        text=[build_prompt("brief"), build_prompt("detailed")],
        suffix=["FIG. 8 is a view.", "FIG. 13 is a view of the actuator."],
        **_precomputed(words_and_boxes, FIG8, FIG13),
    )
    with torch.no_grad():
        result = model(**out)
    batch, length = out["input_ids"].shape
    assert result.logits.shape == (batch, length, model.config.text_config.vocab_size)
    # The model wrote exactly one feature per placeholder the processor made.
    assert result.image_hidden_states.shape[0] == int((out["input_ids"] == model.config.image_token_id).sum())
    assert torch.isfinite(result.loss) and result.loss.item() > 0


# ---------------------------------------------------------------------------------------------- transformers 4.x

_TRANSFORMERS4_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys

    import torch
    import transformers
    from transformers import AutoProcessor

    request = json.load(open(sys.argv[1], encoding="utf-8"))
    processor = AutoProcessor.from_pretrained(request["folder"], trust_remote_code=True)
    out = processor(
        images=request["image"],
        text=request["text"],
        suffix=request["suffix"],
        ocr_words=[request["words"]],
        ocr_boxes=[request["boxes"]],
    )
    torch.save({key: value for key, value in out.items()}, request["output"])
    print(json.dumps({
        "transformers": transformers.__version__,
        "module": type(processor).__module__,
        "repo_importable": any(importlib.util.find_spec(n) is not None for n in ("processing", "patentlmm")),
        "chat_template": processor.apply_chat_template(request["messages"], add_generation_prompt=True),
    }))
    """
)


def test_transformers4_gate_fails_in_ci_and_skips_locally(monkeypatch):
    monkeypatch.delenv(TRANSFORMERS4_ENV, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=TRANSFORMERS4_ENV):
        find_transformers4_python()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=TRANSFORMERS4_ENV):
        find_transformers4_python()
    monkeypatch.setenv(TRANSFORMERS4_ENV, "/nonexistent/python")
    with pytest.raises(pytest.fail.Exception, match="not an executable file"):
        find_transformers4_python()


def test_transformers4_loads_the_saved_processor_with_identical_outputs(
    tiny_dir, processor, paths, words_and_boxes, tmp_path, transformers4_python
):
    python = transformers4_python
    words, boxes = words_and_boxes[FIG8]
    request = {
        "folder": str(tiny_dir),
        "image": str(paths[FIG8]),
        "text": build_prompt("brief"),
        "suffix": "FIG. 8 is a view of FIG. 7 [[10]] in a compressed position.",
        "words": words,
        "boxes": boxes,
        "messages": build_messages("brief"),
        "output": str(tmp_path / "transformers4.pt"),
    }
    (tmp_path / "request.json").write_text(json.dumps(request), encoding="utf-8")
    script = tmp_path / "load_with_transformers4.py"
    script.write_text(_TRANSFORMERS4_SCRIPT, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    # Run from a temporary folder: the repository is neither the cwd nor the script's folder.
    result = subprocess.run(
        [python, str(script), str(tmp_path / "request.json")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["transformers"].startswith("4."), report
    assert report["module"].startswith("transformers_modules."), report
    assert report["repo_importable"] is False
    assert report["chat_template"] == "<s> " + build_prompt("brief")

    theirs = torch.load(Path(request["output"]), weights_only=True)
    ours = processor(
        images=paths[FIG8], text=request["text"], suffix=request["suffix"], ocr_words=[words], ocr_boxes=[boxes]
    )
    assert set(theirs) == set(ours.keys())
    for key in ("input_ids", "ocr_input_ids"):
        assert theirs[key].tolist() == ours[key].tolist(), key
    _assert_same(theirs, ours, ("attention_mask", "labels", "ocr_bbox", "ocr_attention_mask"))
    torch.testing.assert_close(theirs["pixel_values"], ours["pixel_values"], rtol=0, atol=1e-6)


def test_parallel_tesseract_gives_the_same_batch_as_one_worker(processor, paths):
    images = [paths[FIG8], paths[FIG13], paths[FIG8]]
    text = [build_prompt("brief")] * 3
    sequential = copy.copy(processor)
    sequential.num_ocr_workers = 1
    parallel = copy.copy(processor)
    parallel.num_ocr_workers = 3
    _assert_same(parallel(images=images, text=text), sequential(images=images, text=text), MODEL_INPUTS)


def test_official_tokens_and_words_for_the_same_figure_conflict(processor, paths, words_and_boxes):
    official = {"input_ids": [[0, 2]], "bbox": [[[0, 0, 0, 0], [0, 0, 0, 0]]]}
    with pytest.raises(ValueError, match="either ocr \\(token ids\\) or ocr_words/ocr_boxes, not both"):
        processor(images=paths[FIG8], ocr=official, **_precomputed(words_and_boxes, FIG8))

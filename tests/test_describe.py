"""`patentlmm describe` on the tiny model over the bundled real figures: dataset split, resume, batching, pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patentlmm.cli import main
from patentlmm.describe import (
    Figure,
    describe,
    generate_batch,
    iter_descriptions,
    prepare_output,
)
from processing import build_prompt

IDS = ["US20250204297A1__1", "US20250204297A1__8", "US20250204297A1__12", "US20250204297A1__13", "US20250204297A1__16"]


@pytest.fixture(scope="module")
def ocr(tiny, figures) -> dict[str, tuple[list[str], list[list[int]]]]:
    """Tesseract words and boxes of the five figures, run once for the module."""
    _, processor = tiny
    return {i: processor.ocr(figures[i]["path"]) for i in IDS}


@pytest.fixture(scope="module")
def figures_dataset(tmp_path_factory, figures, ocr) -> Path:
    """A `load_dataset(folder, "brief")` Parquet dataset of the five real figures; precomputed OCR for all but the
    first figure (which describe then OCRs with Tesseract)."""
    datasets = pytest.importorskip("datasets")
    rows = {"image_id": [], "image": [], "description": [], "ocr_words": [], "ocr_boxes": []}
    for index, image_id in enumerate(IDS):
        words, boxes = (None, None) if index == 0 else ocr[image_id]
        rows["image_id"].append(image_id)
        rows["image"].append(str(figures[image_id]["path"]))
        rows["description"].append(figures[image_id]["brief_description"])
        rows["ocr_words"].append(words)
        rows["ocr_boxes"].append(boxes)
    features = datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "image": datasets.Image(),
            "description": datasets.Value("string"),
            "ocr_words": datasets.List(datasets.Value("string")),
            "ocr_boxes": datasets.List(datasets.List(datasets.Value("int32"))),
        }
    )
    folder = tmp_path_factory.mktemp("figures-dataset")
    (folder / "brief").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "brief" / "test-00000.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: brief\n  data_files:\n  - split: test\n    path: brief/test-*.parquet\n---\n",
        encoding="utf-8",
    )
    return folder


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dataset_split_is_described_and_resumed_after_an_interruption(figures_dataset, tiny, tiny_dir, tmp_path):
    output = tmp_path / "preds.jsonl"
    # First run (the CLI, model loaded from its folder) stops after one batch of two figures ...
    argv = ["describe", "--model", str(tiny_dir), "--dataset", str(figures_dataset), "--split", "test"]
    argv += ["--config", "brief", "--batch-size", "2", "--max-new-tokens", "2", "--limit", "2", "--output", str(output)]
    assert main(argv) == 0
    first = _rows(output)
    assert len(first) == 2
    # ... and a kill in the middle of the next write leaves a torn line behind.
    with output.open("a", encoding="utf-8") as handle:
        handle.write('{"image_id": "US2025020')
    model, processor = tiny
    written = describe(
        model, processor=processor, dataset=str(figures_dataset), output=output, batch_size=2, max_new_tokens=2
    )
    rows = _rows(output)
    assert len(written) == 3 and rows[:2] == first
    assert sorted(row["image_id"] for row in rows) == sorted(IDS)  # every id once: no duplicates, none lost
    by_id = {row["image_id"]: row for row in rows}
    assert by_id["US20250204297A1__8"]["reference"].startswith("FIG. 8: is a view of FIG. 7")
    assert all(row["type"] == "brief" and isinstance(row["prediction"], str) for row in rows)
    # The figure's OCR references: precomputed OCR for __8, Tesseract for __1 (it reads only "Figure 1" there).
    assert {"16", "11"} <= set(by_id["US20250204297A1__8"]["figure_numerals"])
    assert by_id["US20250204297A1__8"]["figure_labels"] == ["8"]
    assert by_id["US20250204297A1__1"]["figure_labels"] == ["1"]
    assert prepare_output(output, "brief") == set(IDS) and prepare_output(output, "detailed") == set()
    # A third run has nothing left to do.
    assert describe(model, processor=processor, dataset=str(figures_dataset), output=output, max_new_tokens=2) == []


def test_batches_are_sorted_by_ocr_length_and_rows_keep_input_order(tiny, figures, ocr):
    model, processor = tiny
    lengths = {i: len(processor.ocr_tokenizer(ocr[i][0], boxes=ocr[i][1])["input_ids"]) for i in IDS}
    batch_figures = [Figure(i, figures[i]["path"], None, *ocr[i]) for i in IDS]
    batches = list(iter_descriptions(model, processor, batch_figures, max_new_tokens=1, batch_size=2))
    ids = [[row["image_id"] for row in rows] for rows in batches]
    longest_first = sorted(IDS, key=lambda i: -lengths[i])
    assert [len(batch) for batch in ids] == [2, 2, 1]
    assert set(ids[0]) == set(longest_first[:2])
    assert all(batch == sorted(batch, key=IDS.index) for batch in ids)


def test_batched_generation_matches_one_figure_at_a_time(tiny, figures, ocr):
    """Left padding and per-sample image-feature counts (8 has far more OCR tokens than 12) leave greedy output
    unchanged."""
    model, processor = tiny
    chosen = [Figure(i, figures[i]["path"], None, *ocr[i]) for i in ("US20250204297A1__8", "US20250204297A1__12")]
    prompt = build_prompt("brief")
    batched = generate_batch(model, processor, chosen, prompt, max_new_tokens=4)
    alone = [generate_batch(model, processor, [figure], prompt, max_new_tokens=4)[0] for figure in chosen]
    assert batched == alone


def test_static_and_dynamic_kv_caches_give_the_same_descriptions(tiny, figures, ocr):
    model, processor = tiny
    batch = [Figure(i, figures[i]["path"], None, *ocr[i]) for i in IDS[:3]]  # different OCR lengths: left padding
    prompt = build_prompt("brief")
    static = generate_batch(model, processor, batch, prompt, max_new_tokens=12, cache_implementation="static")
    dynamic = generate_batch(model, processor, batch, prompt, max_new_tokens=12, cache_implementation=None)
    assert static == dynamic and all(static)


def test_image_text_to_text_pipeline_with_chat_messages(tiny_dir, figures):
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=str(tiny_dir), trust_remote_code=True)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "url": str(figures["US20250204297A1__8"]["path"])},
                {"type": "text", "text": "Write a brief description for this patent image."},
            ],
        }
    ]
    out = pipe(text=messages, max_new_tokens=3)
    reply = out[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and isinstance(reply["content"], str) and reply["content"].strip()

"""The `pretraining` config: a folder of drawings (any safe file names) -> ocr, layout, visual-tokens, build ->
`datasets.load_dataset` and `PatentDesc355k`."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from PIL import Image

from dataset_builder.build import build_patentdesc_dataset
from dataset_builder.entries import iter_ocr_cache
from dataset_builder.hf_builder import PatentDesc355k
from dataset_builder.layout import DatasetLayout
from dataset_builder.options import BuildOptions
from dataset_builder.pretraining_caches import read_layout_cache, read_visual_tokens
from dataset_builder.reports import read_report
from helpers import FIGURES
from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN, PatentMMEVisualTokenizer
from patentlmm.cli.dataset import main

FIGURE_IDS = ["US20250204297A1__12", "US20250204297A1__8"]
IDS = ["pump-housing", "sheet_01.v2"]  # drawings' names, not PatentDesc ids: taken at a root without the JSON
REFUSED = ["pump housing", ".hidden"]  # a space, a leading dot: reported by each step, never read


@pytest.mark.slow
def test_a_folder_of_drawings_gives_the_pretraining_config(tmp_path):
    root = tmp_path / "drawings"
    (root / "images").mkdir(parents=True)
    for figure, image_id in zip(FIGURE_IDS + FIGURE_IDS, IDS + REFUSED):
        shutil.copy(FIGURES / f"{figure}.png", root / "images" / f"{image_id}.png")
    (root / "images" / "US9__1.png").write_bytes(b"not a png")  # reported by each step, left out
    tokenizer = tmp_path / "tokenizer"
    PatentMMEVisualTokenizer.random(0, TINY_VQGAN).save_pretrained(tokenizer)
    assert main(["ocr", "--root", str(root), "--engine", "drawing", "--workers", "2"]) == 0
    assert main(["layout", "--root", str(root), "--workers", "2"]) == 0
    (root / "visual_tokens").mkdir()  # the visual tokens of one figure only: the other's column is null
    shutil.copy(root / "images" / f"{IDS[1]}.png", tmp_path / "aside.png")
    (root / "images" / f"{IDS[1]}.png").unlink()
    assert main(["visual-tokens", "--root", str(root), "--tokenizer", str(tokenizer)]) == 0
    shutil.copy(tmp_path / "aside.png", root / "images" / f"{IDS[1]}.png")
    assert main(["build", "--root", str(root), "--workers", "1"]) == 0

    output = root / "patentdesc-355k"
    assert sorted(path.name for path in output.iterdir()) == ["README.md", "pretraining"]
    dataset = load_dataset(str(output), "pretraining")
    assert list(dataset) == ["train"] and dataset["train"]["image_id"] == IDS
    layout = DatasetLayout(root)
    ocr = {i: {"words": w, "boxes": b} for i, w, b in iter_ocr_cache(layout.ocr_cache_paths, None, layout.validate_id)}
    elements = read_layout_cache(root / "layout")
    tokens, record = read_visual_tokens(root / "visual_tokens")
    for figure_id, row in zip(FIGURE_IDS, dataset["train"]):
        image_id = row["image_id"]
        with Image.open(FIGURES / f"{figure_id}.png") as figure:
            assert (row["image"].mode, row["image"].tobytes()) == (figure.mode, figure.tobytes())  # the PNG as is
        assert (row["ocr_words"], row["ocr_boxes"]) == (ocr[image_id]["words"], ocr[image_id]["boxes"])
        assert (row["layout_boxes"], row["layout_classes"]) == (elements[image_id]["boxes"],
                                                                 elements[image_id]["classes"])  # fmt: skip
        assert row["visual_tokens"] == tokens.get(image_id)
    assert [row["visual_tokens"] is None for row in dataset["train"]] == [False, True]
    metadata = pq.read_schema(next((output / "pretraining").glob("train-*.parquet"))).metadata
    assert json.loads(metadata[b"patentlmm_visual_tokenizer"]) == record
    assert json.loads(metadata[b"patentlmm_layout"])["source"] == "ocr"
    assert json.loads(metadata[b"patentlmm_ocr"])["engine"] == "drawing"
    rejected = {line["image_id"]: line for line in read_report(root / "reports" / "rejected.jsonl")}
    assert sorted(rejected) == sorted(["US9__1", *REFUSED])
    assert rejected["US9__1"] == {"image_id": "US9__1", "stage": "build", "reason": "no layout elements (run "
                                  "`layout` first)", "action": "left out of pretraining"}  # fmt: skip
    [ocr_report] = (root / "reports").glob("ocr_failures-drawing-*.jsonl")
    for report in (ocr_report.stem, "layout_failures", "visual_token_failures", "rejected"):
        lines = {line["image_id"]: line for line in read_report(root / "reports" / f"{report}.jsonl")}
        for name in REFUSED:
            assert lines[name]["reason"].startswith(f"image id {name!r} is not a safe file name: "), report
    card = (output / "README.md").read_text()
    assert "config_name: pretraining" in card and "path: pretraining/train-*.parquet" in card

    builder = PatentDesc355k(config_name="pretraining", data_dir=str(root), cache_dir=str(tmp_path / "hf-cache"))
    builder.download_and_prepare()
    generated = builder.as_dataset()
    assert list(generated) == ["train"] and generated["train"].features == dataset["train"].features
    assert generated["train"].to_list() == dataset["train"].to_list()


def test_a_root_without_descriptions_or_layout_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"PatentDesc-355k.json not found: .* a layout/ cache: run `layout`"):
        build_patentdesc_dataset(tmp_path, options=BuildOptions(workers=1))

"""Dataset rows that cannot train follow the dataset policy: each is reported with its id and reason and skipped, the
run goes on and lists them at the end; with `--bad_rows refuse` the run stops before its first step, listing all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset

from helpers import REPO
from helpers.damaged import damaged_images
from helpers.training import FAST, PATENTDESC_README

pytest.importorskip("trl")

from patentlmm import training  # noqa: E402
from patentlmm.training.rows import SKIPPED_ROWS_FILE, row_problem  # noqa: E402

# image id -> (what is wrong, the reason reported)
BAD = {
    "BAD__png": ("image", "the image does not decode"),
    "BAD__qoi": ("image", "the image does not decode"),
    "BAD__empty": ("description", "the description is empty"),
    "BAD__null": ("description", "the description is null"),
    "BAD__box": ("box", "OCR box 1 [10, 10, 1200, 40] is outside 0-1000"),
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory, patentdesc_dir) -> Path:
    """The five real rows (train split) + one bad row of each kind, the bad ones between the good ones."""
    from dataset_builder.features import patentdesc_features

    features = patentdesc_features()
    good = load_dataset(str(patentdesc_dir), "brief", split="train").cast_column("image", features["image"])
    rows = [dict(row) for row in good.cast_column("image", features["image"].__class__(decode=False))]
    damaged = damaged_images()
    template = rows[0]
    bad = {
        "BAD__png": {"image": {"bytes": damaged["SyntaxError"], "path": None}},
        "BAD__qoi": {"image": {"bytes": damaged["IndexError"], "path": None}},
        "BAD__empty": {"description": "  \n"},
        "BAD__null": {"description": None},
        "BAD__box": {"ocr_words": ["FIG.", "8"], "ocr_boxes": [[10, 10, 40, 40], [10, 10, 1200, 40]]},
    }
    mixed = []
    for index, (image_id, change) in enumerate(bad.items()):
        mixed += [rows[index], {**template, "image_id": image_id, **change}]
    folder = tmp_path_factory.mktemp("patentdesc-bad")
    (folder / "brief").mkdir()
    dataset = Dataset.from_list(mixed, features=features)
    dataset.to_parquet(str(folder / "brief" / "train-00000-of-00001.parquet"))
    dataset.select(range(2)).to_parquet(str(folder / "brief" / "validation-00000-of-00001.parquet"))
    (folder / "README.md").write_text(PATENTDESC_README, encoding="utf-8")
    return folder


def _command(data: Path, model: Path, output: Path) -> list[str]:
    return ["--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(model),
            "--dataset_name", str(data), "--output_dir", str(output), "--lora_r", "4", "--lora_alpha", "8",
            "--merge_lora", "false", "--gradient_checkpointing", "false", *FAST, "--max_steps", "3"]  # fmt: skip


def test_bad_rows_are_reported_skipped_and_listed_at_the_end(tmp_path, bad_dir, small, caplog):
    with caplog.at_level("WARNING", logger="patentlmm.training"):
        output = training.main(_command(bad_dir, small[0], tmp_path / "run"))
    for image_id, (_, reason) in BAD.items():
        assert any(f"Skipped train row {image_id}: {reason}" in line for line in caplog.messages), image_id
    assert f"Skipped 5 dataset rows that cannot train (train: 5), listed in {output / SKIPPED_ROWS_FILE}." in (
        caplog.messages
    )
    listed = [json.loads(line) for line in (output / SKIPPED_ROWS_FILE).read_text().splitlines()]
    assert [(row["split"], row["image_id"]) for row in listed] == [("train", image_id) for image_id in BAD]
    assert all(row["reason"].startswith(BAD[row["image_id"]][1]) for row in listed)
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and (output / "adapter_model.safetensors").is_file()


def test_refuse_lists_every_bad_row_before_the_first_step(tmp_path, bad_dir, small):
    with pytest.raises(SystemExit) as stopped:
        training.main([*_command(bad_dir, small[0], tmp_path / "run"), "--bad_rows", "refuse"])
    message = str(stopped.value.code)
    assert message.startswith("train: 5 dataset rows cannot train (--bad_rows refuse; skip trains without them):")
    for image_id, (_, reason) in BAD.items():
        assert f"\n  train {image_id}: {reason}" in message
    assert not list((tmp_path / "run").glob("checkpoint-*")) and not (tmp_path / "run" / "trainer_state.json").exists()


def test_row_problem_names_each_defect():
    image = {"bytes": (REPO / "patentlmm" / "assets" / "figures" / "US20250204297A1__12.png").read_bytes()}
    good = {"image": image, "description": "FIG. 12 shows.", "ocr_words": ["a"], "ocr_boxes": [[0, 0, 1000, 1000]]}
    assert row_problem(good, None) is None
    cases = {
        "ocr_words is null but ocr_boxes is not": {"ocr_words": None},
        "1 OCR words but 0 OCR boxes": {"ocr_boxes": []},
        "OCR word 0 is null": {"ocr_words": [None]},
        "OCR box 0 [-1, 0, 5, 5] is outside 0-1000": {"ocr_boxes": [[-1, 0, 5, 5]]},
        "OCR box 0 [0, 0, 5] is outside 0-1000": {"ocr_boxes": [[0, 0, 5]]},
        "official OCR box 0 [0, 0, 5, 1001] is outside 0-1000": {"ocr_bbox": [[0, 0, 5, 1001]]},
        "the image is null": {"image": None},
        "the description is empty": {"description": ""},
    }
    for reason, change in cases.items():
        assert row_problem({**good, **change}, None) == reason
    assert row_problem({**good, "image": {"bytes": b"not an image"}}, None).startswith("the image does not decode: ")
    assert row_problem(good, 100).startswith("the image is too large: The image bytes is ")

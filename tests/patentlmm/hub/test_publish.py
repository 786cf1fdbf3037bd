"""patentlmm.hub and push_to_hub.py: the staged folder and card, and a real round trip through a Hub on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from helpers import FIGURES, REPO, SCRIPTS
from helpers.hub_server import HubServer
from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from patentlmm.cli import main as patentlmm
from patentlmm.hub import PushOptions, build_model_card, push_model, select_model_files, stage_model_folder
from patentlmm_common.paper import CITATION
from processing import build_prompt

ROUND_TRIP = SCRIPTS / "hub_round_trip.py"
FIG8 = "US20250204297A1__8"
WORDS, BOXES = ["Figure", "8", "16"], [[700, 900, 800, 930], [810, 900, 830, 930], [100, 200, 130, 220]]
METRICS = {"bleu2": 46.4, "bleu4": 36.66, "avg_bleu": 44.59, "rouge1": 56.68, "rouge2": 42.63, "rougeL": 54.18}


@pytest.fixture(scope="module")
def mini_dataset(tmp_path_factory, figures) -> Path:
    """A two-row script-free dataset folder: Parquet with an Image column and a card declaring the config."""
    from datasets import Dataset, Features, Image, Sequence, Value

    folder = tmp_path_factory.mktemp("data") / "patentdesc-mini"
    features = Features(
        {
            "image_id": Value("string"),
            "image": Image(),
            "description": Value("string"),
            "ocr_words": Sequence(Value("string")),
        }
    )
    ids = [FIG8, "US20250204297A1__12"]
    rows = {
        "image_id": ids,
        "image": [str(figures[i]["path"]) for i in ids],
        "description": [figures[i]["brief_description"] for i in ids],
        "ocr_words": [WORDS, []],
    }
    (folder / "brief").mkdir(parents=True)
    Dataset.from_dict(rows, features=features).to_parquet(folder / "brief" / "train-00000-of-00001.parquet")
    card = {"configs": [{"config_name": "brief", "data_files": [{"split": "train", "path": "brief/train-*.parquet"}]}]}
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card)}---\n# mini\n", encoding="utf-8")
    return folder


def test_staged_folder_is_complete_and_card_metadata_parses(tiny_dir, tmp_path):
    widget = sorted((REPO / "patentlmm" / "assets" / "figures").glob("*.png"))[:2]
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for path in tiny_dir.iterdir():  # a folder without remote code or generation config, as some tools save
        if path.is_file() and not path.name.endswith(".py") and path.name != "generation_config.json":
            (stripped / path.name).write_bytes(path.read_bytes())
    (stripped / "ocr_tokenizer").mkdir()
    for path in (tiny_dir / "ocr_tokenizer").iterdir():
        (stripped / "ocr_tokenizer" / path.name).write_bytes(path.read_bytes())

    staged = stage_model_folder(stripped, tmp_path / "staged", widget)
    for name in (
        "modeling_patentlmm.py",
        "configuration_patentlmm.py",
        "processing_patentlmm.py",
        "ocr_engines.py",
        "ocr_tokens.py",
    ):
        assert (staged / name).is_file(), name
    assert json.loads((staged / "config.json").read_text())["auto_map"]["AutoModelForVision2Seq"].endswith(
        "PatentLMMForConditionalGeneration"
    )
    assert json.loads((staged / "generation_config.json").read_text())["max_new_tokens"] == 512
    assert sorted(p.name for p in (staged / "examples").iterdir()) == [p.name for p in widget]

    card = build_model_card("me/patentlmm-tiny", "brief", METRICS, "lmsys/vicuna-7b-v1.5", widget_images=widget)
    card.save(staged / "README.md")
    loaded = ModelCard.load(staged / "README.md")
    data = loaded.data.to_dict()
    assert data["pipeline_tag"] == "image-text-to-text" and data["library_name"] == "transformers"
    assert [item["src"] for item in data["widget"]] == [f"examples/{p.name}" for p in widget]
    assert all((staged / item["src"]).is_file() for item in data["widget"])
    results = {m["type"]: m["value"] for r in data["model-index"][0]["results"] for m in r["metrics"]}
    assert results == METRICS
    assert "AutoModelForVision2Seq" in loaded.text and "| 46.40 | 36.66 | 44.59 |" in loaded.text


def _copy_model(tiny_dir: Path, folder: Path) -> Path:
    """A copy of the tiny model folder (files and `ocr_tokenizer/`)."""
    shutil.copytree(tiny_dir, folder)
    return folder


def test_pickled_weights_and_incomplete_folders_are_refused(tiny_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        stage_model_folder(tmp_path, tmp_path / "out")
    copy = _copy_model(tiny_dir, tmp_path / "copy")
    torch.save({"w": torch.zeros(1)}, copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"pickled files \(pytorch_model.bin\) and no safetensors weights"):
        stage_model_folder(copy, tmp_path / "out")


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: struct.pack("<Q", 10**15) + data[8:], "header too large"),  # a malformed header length
        (lambda data: data[: len(data) // 2], "incomplete metadata"),  # a truncated file
        (lambda data: data[:8] + b"[" + data[9:], "invalid JSON"),  # a damaged header
    ],
)
def test_weights_that_do_not_parse_are_refused_before_staging(tiny_dir, tmp_path, damage, reason):
    copy = _copy_model(tiny_dir, tmp_path / "copy")
    weights = copy / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ValueError, match=rf"{re.escape(str(weights))} is not a valid safetensors file: .*{reason}"):
        stage_model_folder(copy, tmp_path / "staged")
    assert not (tmp_path / "staged").exists()


def test_only_model_files_are_uploaded_and_the_rest_is_listed(tiny_dir, tmp_path):
    """A training output folder with secrets, logs and checkpoints: a real push to a Hub on 127.0.0.1 uploads the
    model files only, and the command names what it left out (never the token)."""
    token = "hf_secret_token_in_dotenv_0123456789"
    folder = _copy_model(tiny_dir, tmp_path / "outputs" / "stage2-brief")
    (folder / ".env").write_text(f"HF_TOKEN={token}\n")
    (folder / "wandb" / "run-1").mkdir(parents=True)
    (folder / "wandb" / "debug.log").write_text(f"login with {token}\n")
    (folder / "runs" / "Dec01").mkdir(parents=True)
    (folder / "runs" / "Dec01" / "events.out.tfevents.1").write_bytes(b"\x00events")
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": []}))
    torch.save({"lr": 1e-4}, folder / "training_args.bin")
    (folder / "checkpoint-5").mkdir()
    shutil.copyfile(folder / "model.safetensors", folder / "checkpoint-5" / "model.safetensors")
    (folder / "train.py").write_text(f"TOKEN = '{token}'\n")
    expected = {path for path in select_model_files(tiny_dir)[0]} | {"README.md"}
    widget = sorted((REPO / "patentlmm" / "assets" / "figures").glob("*.png"))[:3]
    expected |= {f"examples/{path.name}" for path in widget}

    with HubServer() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": "hf_push",
               "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
        result = subprocess.run(
            [sys.executable, str(REPO / "push_to_hub.py"), "model", str(folder), "--repo-id", "tester/stage2"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        _, files = hub.repos[("model", "tester/stage2")].snapshot("main")
    assert set(files) == expected, set(files) ^ expected
    assert not any(token.encode() in content for content in files.values())
    left_out = ".env, checkpoint-5/, runs/, train.py, trainer_state.json, training_args.bin, wandb/"
    assert f"Left out of the model repo (not model files): {left_out}" in result.stderr
    assert token not in result.stdout + result.stderr and "hf_push" not in result.stdout + result.stderr


def test_dry_run_writes_the_folder_only_with_metrics_from_patentlmm_eval(tiny_dir, tmp_path, capsys):
    metrics = tmp_path / "metrics.json"  # the layout `patentlmm eval --output` writes
    metrics.write_text(json.dumps({"detailed": {"metrics": {"bleu4": 15.02, "meteor": 28.39}}}), encoding="utf-8")
    argv = ["model", str(tiny_dir), "--repo-id", "me/x", "--type", "detailed", "--metrics", str(metrics)]
    assert patentlmm(["push", *argv, "--dry-run", "--staging-dir", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s")
    assert (tmp_path / "s" / "model.safetensors").is_file()
    card = ModelCard.load(tmp_path / "s" / "README.md")
    assert "| BLEU-4 | METEOR |" in card.text and "| 15.02 | 28.39 |" in card.text
    assert "Write a detailed description" in card.text


def test_round_trip_through_a_local_hub(tiny, tiny_dir, figures, mini_dataset, tmp_path):
    model, processor = tiny
    batch = processor(
        images=[figures[FIG8]["path"]], text=[build_prompt("brief")], ocr_words=[WORDS], ocr_boxes=[BOXES]
    )
    expected = model.generate(**batch, max_new_tokens=6, do_sample=False)[0, batch["input_ids"].shape[1] :].tolist()

    with HubServer() as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_TOKEN": "hf_local_test_token",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONPATH": str(REPO),
        }
        args = [str(tiny_dir), str(mini_dataset), str(figures[FIG8]["path"]), json.dumps(WORDS), json.dumps(BOXES)]
        result = subprocess.run(
            [sys.executable, str(ROUND_TRIP), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["sha_after_first"] == report["sha_after_second"]  # the second, identical push changed nothing
    assert {"model.safetensors", "modeling_patentlmm.py", "processing_patentlmm.py", "README.md"} <= set(
        report["files"]
    )
    assert report["model_module"].startswith("transformers_modules.")
    assert report["generated"] == expected
    assert report["dataset_rows"] == [FIG8, "US20250204297A1__12"]
    assert report["dataset_image_size"] == list(_size(figures[FIG8]["path"]))


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def test_the_card_and_the_readme_cite_the_package_citation():
    """`patentlmm_common.paper.CITATION` is the one BibTeX entry: the card prints it, the README's copy equals it."""
    card = build_model_card("me/x", widget_images=[])
    assert f"```bibtex\n{CITATION}\n```" in card.text
    assert f"max_new_tokens={DEFAULT_MAX_NEW_TOKENS}, do_sample=False" in card.text  # the saved default, not a copy
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"## Citation\n\n```bibtex\n(.*?)\n```", readme, re.S).group(1) == CITATION


def test_patentlmm_push_stages_the_given_widget_figures(tiny_dir, tmp_path, capsys):
    widget = sorted(FIGURES.glob("*.png"))[3:5]
    argv = ["push", "model", str(tiny_dir), "--repo-id", "me/x", "--dry-run", "--staging-dir", str(tmp_path / "s")]
    assert patentlmm([*argv, "--widget-image", *map(str, widget)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s")
    assert sorted(path.name for path in (tmp_path / "s" / "examples").iterdir()) == [path.name for path in widget]
    srcs = [item["src"] for item in ModelCard.load(tmp_path / "s" / "README.md").data.to_dict()["widget"]]
    assert srcs == [f"examples/{path.name}" for path in widget]


def test_dry_run_without_staging_dir_is_refused_before_staging(tiny_dir):
    with pytest.raises(ValueError, match="--dry-run needs --staging-dir"):
        push_model(tiny_dir, PushOptions("me/x", dry_run=True))


def test_a_metrics_file_without_the_type_is_refused_naming_it(tiny_dir, tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"brief": {"metrics": {"bleu4": 36.66}}}), encoding="utf-8")
    options = PushOptions("me/x", desc_type="detailed", metrics=metrics, dry_run=True, staging_dir=tmp_path / "s")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(metrics))} is not a `patentlmm eval --output` file with "):
        push_model(tiny_dir, options)
    assert not (tmp_path / "s").exists()

"""`patentlmm.hub.files`: symbolic links never carry a file out of a published folder, and every weight index,
shard, Parquet file and card config is checked before anything is uploaded (real links, a real Hub on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from helpers.hub_server import HubServer
from patentlmm.hub import stage_model_folder
from patentlmm.hub.files import select_dataset_files
from patentlmm_common.weights import check_weights

TOKEN = "hf_secret_token_outside_the_folder_0123456789"


@pytest.fixture
def secret(tmp_path) -> Path:
    """A token file outside every folder that is published (as ~/.cache/huggingface/token is)."""
    path = tmp_path / "home" / ".cache" / "huggingface" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(TOKEN)
    return path


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    """A built dataset folder: a card with one config and one real Parquet shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "patentdesc-355k"
    (folder / "brief").mkdir(parents=True)
    pq.write_table(pa.table({"image_id": ["a", "b"], "description": ["x", "y"]}), folder / "brief" / "train-0.parquet")
    card = {"configs": [{"config_name": "brief", "data_files": [{"split": "train", "path": "brief/train-*.parquet"}]}]}
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card)}---\n# data\n", encoding="utf-8")
    return folder


def _push(what: str, folder: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, HubServer]:
    """`python push_to_hub.py WHAT FOLDER` against a Hub on 127.0.0.1; returns the result and the (stopped) hub."""
    with HubServer() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_TOKEN": "hf_push",
               "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
        result = subprocess.run(
            [sys.executable, str(REPO / "push_to_hub.py"), what, str(folder), "--repo-id", "tester/x"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    return result, hub


@pytest.mark.parametrize("link", ["tokenizer.json", "ocr_tokenizer", "notes/token.txt"])
def test_a_model_folder_with_a_link_leaving_it_publishes_nothing(tiny_dir, tmp_path, secret, link):
    """A link to a file or a folder outside, allow-listed or not, at any depth: the push exits 1 naming the link,
    creates no repo, and the token is in no output."""
    folder = shutil.copytree(tiny_dir, tmp_path / "model")
    target = secret if link != "ocr_tokenizer" else secret.parent
    if (folder / link).is_dir():
        shutil.rmtree(folder / link)
    (folder / link).parent.mkdir(exist_ok=True)
    (folder / link).unlink(missing_ok=True)
    (folder / link).symlink_to(target)

    result, hub = _push("model", folder, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{link} -> {target}" in result.stderr and "symbolic links that leave the folder" in result.stderr
    assert "Traceback" not in result.stderr and hub.repos == {}
    assert TOKEN not in result.stdout + result.stderr
    with pytest.raises(ValueError, match="leave the folder"):
        stage_model_folder(folder, tmp_path / "staged")
    assert not (tmp_path / "staged").exists()


def test_links_inside_the_folder_are_followed_and_dangling_ones_refused(tiny_dir, tmp_path):
    folder = shutil.copytree(tiny_dir, tmp_path / "model")
    (folder / "weights").mkdir()
    (folder / "model.safetensors").rename(folder / "weights" / "model.safetensors")
    (folder / "model.safetensors").symlink_to(Path("weights") / "model.safetensors")  # relative, inside
    staged = stage_model_folder(folder, tmp_path / "staged")
    assert not (staged / "model.safetensors").is_symlink()
    assert (staged / "model.safetensors").read_bytes() == (folder / "weights" / "model.safetensors").read_bytes()

    (folder / "last.ckpt").symlink_to(folder / "gone.ckpt")
    with pytest.raises(ValueError, match=r"last.ckpt -> .*gone.ckpt"):
        stage_model_folder(folder, tmp_path / "staged-2")


def test_a_dataset_folder_publishes_its_card_and_parquet_only(dataset_dir, tmp_path, secret):
    (dataset_dir / ".env").write_text(f"HF_TOKEN={TOKEN}\n")
    (dataset_dir / "build_report.jsonl").write_text("{}\n")
    assert select_dataset_files(dataset_dir) == (["README.md", "brief/train-0.parquet"], [".env", "build_report.jsonl"])

    result, hub = _push("dataset", dataset_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    _, files = hub.repos[("dataset", "tester/x")].snapshot("main")
    assert sorted(files) == ["README.md", "brief/train-0.parquet"]
    assert "Left out of the dataset repo (not dataset files): .env, build_report.jsonl" in result.stderr

    (dataset_dir / "brief" / "train-1.parquet").symlink_to(secret)  # a shard that is a token file outside
    result, hub = _push("dataset", dataset_dir, tmp_path)
    assert result.returncode == 1 and f"brief/train-1.parquet -> {secret}" in result.stderr
    assert hub.repos == {} and TOKEN not in result.stdout + result.stderr


def test_a_dataset_folder_whose_parquet_or_card_is_broken_is_refused(dataset_dir, tmp_path):
    shard = dataset_dir / "brief" / "train-0.parquet"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{shard} is not a valid Parquet file"):
        select_dataset_files(dataset_dir)
    shard.write_bytes(data)

    card = {"configs": [{"config_name": "detailed", "data_files": "detailed/*.parquet"}]}
    (dataset_dir / "README.md").write_text(f"---\n{yaml.safe_dump(card)}---\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"config 'detailed' names data files 'detailed/\*.parquet' that match no"):
        select_dataset_files(dataset_dir)

    result, hub = _push("dataset", dataset_dir, tmp_path)
    assert result.returncode == 1 and "match no Parquet file" in result.stderr and hub.repos == {}


@pytest.mark.parametrize(
    "shard, error",
    [
        ("../model-00001-of-00001.safetensors", "names shards that are not file names beside it"),
        ("sub/model-00001-of-00001.safetensors", "names shards that are not file names beside it"),
        ("model-00002-of-00002.safetensors", "names shard\\(s\\) missing from"),
    ],
)
def test_a_weight_index_naming_shards_outside_or_missing_is_refused(tiny_dir, tmp_path, shard, error):
    folder = shutil.copytree(tiny_dir, tmp_path / "model")
    index = {"metadata": {}, "weight_map": {"lm_head.weight": shard}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        check_weights(folder)
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        stage_model_folder(folder, tmp_path / "staged")
    assert not (tmp_path / "staged").exists()

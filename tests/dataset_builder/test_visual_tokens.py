"""The `visual-tokens` step: a real (tiny, seeded) VQGAN tokenizer over bundled figures; bad figures; reruns."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from dataset_builder.options import VisualTokenOptions
from dataset_builder.pretraining_caches import CacheMismatchError, read_visual_tokens
from dataset_builder.reports import read_report
from dataset_builder.visual_tokens import run_visual_tokens
from helpers import FIGURES, REPO
from helpers.damaged import damaged_images
from modeling_patentlmm.visual_tokenizer_patentmme import TINY_VQGAN, PatentMMEVisualTokenizer
from patentlmm.cli.dataset import main

IDS = ["US20250204297A1__12", "US20250204297A1__8", "US20250204297A1__5"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    PatentMMEVisualTokenizer.random(0, TINY_VQGAN).save_pretrained(folder)
    return folder


@pytest.fixture
def root(tmp_path):
    (tmp_path / "root" / "images").mkdir(parents=True)
    for image_id in IDS:
        shutil.copy(FIGURES / f"{image_id}.png", tmp_path / "root" / "images")
    return tmp_path / "root"


def test_tokens_are_the_tokenizers_ids_and_the_cache_records_it(root, tokenizer_dir, capsys):
    assert main(["visual-tokens", "--root", str(root), "--tokenizer", str(tokenizer_dir), "--batch-size", "2"]) == 0
    assert "visual-tokens: 3 figures: 3 encoded" in capsys.readouterr().out
    tokenizer = PatentMMEVisualTokenizer.from_pretrained(tokenizer_dir)
    tokens, record = read_visual_tokens(root / "visual_tokens", tokenizer.fingerprint, 384)
    assert record == {"fingerprint": tokenizer.fingerprint, "image_size": 384}
    for image_id in IDS:
        image = Image.open(FIGURES / f"{image_id}.png").convert("RGB")
        assert tokens[image_id] == tokenizer.encode(tokenizer.preprocess([image]))[0].tolist()
        assert len(tokens[image_id]) == 576
    assert len({tuple(ids) for ids in tokens.values()}) == 3


def test_another_tokenizer_or_image_size_is_refused(root, tokenizer_dir, tmp_path, capsys):
    assert main(["visual-tokens", "--root", str(root), "--tokenizer", str(tokenizer_dir)]) == 0
    other = tmp_path / "other"
    PatentMMEVisualTokenizer.random(0, TINY_VQGAN, image_size=64).save_pretrained(other)
    before = (root / "visual_tokens" / "visual_tokens.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["visual-tokens", "--root", str(root), "--tokenizer", str(other)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"visual-tokens: {root / 'visual_tokens'} holds the visual tokens made with other settings")
    assert "image_size: 384 there, 64 now" in error and "fingerprint: " in error
    assert (root / "visual_tokens" / "visual_tokens.jsonl").read_bytes() == before  # nothing lost
    with pytest.raises(CacheMismatchError, match=r"another tokenizer \(image_size 384, not 64\)"):
        read_visual_tokens(root / "visual_tokens", image_size=64)
    with pytest.raises(CacheMismatchError, match=r"another tokenizer \(fingerprint '[0-9a-f]{16}', not 'abc'\)"):
        read_visual_tokens(root / "visual_tokens", fingerprint="abc")


def test_bad_figures_are_reported_the_run_goes_on_and_a_rerun_resumes(root, tokenizer_dir):
    damaged = {f"US1__{k}": (name, data) for k, (name, data) in enumerate(damaged_images().items(), 1)}
    for image_id, (_, data) in damaged.items():
        (root / "images" / f"{image_id}.png").write_bytes(data)
    options = VisualTokenOptions(tokenizer=tokenizer_dir, batch_size=2)
    summary = run_visual_tokens(root, options)
    assert (summary.total, summary.processed, summary.failed) == (6, 3, 3)
    lines = {line["image_id"]: line for line in read_report(root / "reports" / "visual_token_failures.jsonl")}
    for image_id, (name, _) in damaged.items():
        assert lines[image_id]["reason"].startswith(f"unreadable image images/{image_id}.png: {name}: ")
        assert lines[image_id]["permanent"] is True
    (root / "images" / "US2__1.png").write_bytes((FIGURES / f"{IDS[0]}.png").read_bytes())
    again = run_visual_tokens(root, options)
    assert (again.processed, again.cached, again.previously_failed, again.failed) == (1, 3, 3, 0)
    tokens, _ = read_visual_tokens(root / "visual_tokens")
    assert sorted(tokens) == sorted([*IDS, "US2__1"]) and tokens["US2__1"] == tokens[IDS[0]]


def test_options_need_one_tokenizer(root, capsys):
    assert main(["visual-tokens", "--root", str(root)]) == 2
    assert capsys.readouterr().err == (
        "visual-tokens: visual-tokens needs exactly one of --tokenizer DIR and --random-tokenizer-seed N\n"
    )
    assert main(["visual-tokens", "--root", str(root), "--tokenizer", str(root / "nothing")]) == 2
    assert "is not a visual tokenizer folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module",
    ["visual_tokens", "layout_labels", "pretraining", "pretraining_caches", "layout_elements", "drawing_elements",
     "coco_elements"],
)
def test_the_steps_import_torch_and_the_tokenizer_only_when_they_run(module):
    """No module-level import of torch or the model code: `visual-tokens` imports the tokenizer inside
    `load_tokenizer`."""
    tree = ast.parse((REPO / "dataset_builder" / f"{module}.py").read_text())
    top_level = {
        name.split(".")[0]
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in ([alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""])
    }
    assert not top_level & {"torch", "modeling_patentlmm", "transformers", "patentlmm"}
    lazy = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
            and node.module.startswith("modeling_patentlmm")]  # fmt: skip
    assert [node.module for node in lazy] == (
        ["modeling_patentlmm.visual_tokenizer_patentmme"] if module == "visual_tokens" else []
    )


def test_importing_the_steps_imports_no_torch():
    code = (
        "import sys, dataset_builder.steps, dataset_builder.visual_tokens, dataset_builder.layout_labels, "
        "dataset_builder.build, dataset_builder.pretraining; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert result.stdout.strip() == "[]", result.stderr[-2000:]


def test_the_cache_lines_are_json_with_576_ids(root, tokenizer_dir):
    run_visual_tokens(root, VisualTokenOptions(tokenizer=tokenizer_dir))
    lines = (root / "visual_tokens" / "visual_tokens.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["image_id"] for line in lines) == sorted(IDS)
    assert all(len(json.loads(line)["tokens"]) == 576 for line in lines)

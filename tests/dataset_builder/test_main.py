"""`python -m dataset_builder` / `patentlmm dataset`: steps imported lazily, `build`/`export-llava` from the command
line, and `all` running the steps in order on one root (download and ocr replaced by recording stand-ins here; their
own tests cover them)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from helpers import REPO
from patentlmm.cli.dataset import main

FIGURES = REPO / "patentlmm" / "assets" / "figures"
STEP_MODULES = [f"dataset_builder.{name}" for name in ("download", "ocr", "build", "export_llava", "hf_builder")]


def test_module_entry_point_lists_the_steps_without_importing_them():
    result = subprocess.run(
        [sys.executable, "-m", "dataset_builder", "--help"], cwd=REPO, capture_output=True, text=True
    )
    for command in ("download", "ocr", "build", "export-llava", "all"):
        assert command in result.stdout
    # `import patentlmm` loads transformers (it registers the Auto classes): only the steps and datasets stay out.
    code = (
        "import sys; from patentlmm.cli import build_parser; build_parser(['dataset', 'all']); "
        f"print(sorted(m for m in sys.modules if m in {STEP_MODULES!r} or m.startswith('datasets')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "dataset_builder", "all"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "--root" in result.stderr  # argparse: the required option is missing


def _fake_step(name: str, calls: list, status: int = 0) -> types.ModuleType:
    """A stand-in step module recording `(step, root, options.workers)` when it runs."""
    module = types.ModuleType(name)
    step = name.rsplit(".", 1)[1]

    def run_on_root(root: Path, options) -> int:
        calls.append((step, str(root), options.workers))
        return status

    setattr(module, f"{step}_root", run_on_root)
    return module


@pytest.fixture
def root(tmp_path) -> Path:
    """The five bundled real figures as a dataset root, with an OCR cache of no words (enough for `build`)."""
    root = tmp_path / "DATASET"
    (root / "images").mkdir(parents=True)
    entries = json.loads((FIGURES / "descriptions.json").read_text(encoding="utf-8"))
    (root / "PatentDesc-355k.json").write_text(json.dumps(entries), encoding="utf-8")
    for image_id in entries:
        (root / "images" / f"{image_id}.png").write_bytes((FIGURES / f"{image_id}.png").read_bytes())
    (root / "ocr").mkdir()
    lines = [json.dumps({"image_id": i, "words": [], "boxes": [], "width": 1, "height": 1}) for i in entries]
    (root / "ocr" / "ocr_cache.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_all_runs_download_ocr_build_and_export_in_order(root, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setitem(sys.modules, "dataset_builder.download", _fake_step("dataset_builder.download", calls))
    monkeypatch.setitem(sys.modules, "dataset_builder.ocr", _fake_step("dataset_builder.ocr", calls))
    argv = ["all", "--root", str(root), "--download-args", "--workers 32", "--build-args", "--workers 2 --seed 1"]
    assert main([*argv, "--export-llava"]) == 0
    assert calls == [("download", str(root), 32), ("ocr", str(root), None)]  # ocr: its own default (every core)
    assert (root / "patentdesc-355k" / "README.md").is_file()
    assert json.loads((root / "llava_json" / "brief_train").read_text()) or (root / "llava_json" / "brief_val")
    out = capsys.readouterr().out
    assert out.index("== download") < out.index("== ocr") < out.index("== build") < out.index("== export-llava")


def test_all_stops_at_the_first_failing_step(root, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setitem(sys.modules, "dataset_builder.download", _fake_step("dataset_builder.download", calls, 3))
    monkeypatch.setitem(sys.modules, "dataset_builder.ocr", _fake_step("dataset_builder.ocr", calls))
    assert main(["all", "--root", str(root)]) == 3
    assert calls == [("download", str(root), 16)] and not (root / "patentdesc-355k").exists()
    assert "download failed with exit status 3" in capsys.readouterr().err


def test_build_and_export_from_the_command_line(root, capsys):
    splits = root / "data_splits"
    splits.mkdir()
    (splits / "train.txt").write_text("US20250204297A1__1\nUS20250204297A1__8\nUS20250204297A1__12\n")
    (splits / "val.txt").write_text("US20250204297A1__13\n")
    (splits / "test.txt").write_text("US20250204297A1__16\nUS20250204297A1__99\n")
    assert main(["build", "--root", str(root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "brief: train 3, validation 1, test 1; detailed: train 2, validation 1, test 1" in out
    reports = [json.loads(line) for line in (root / "reports" / "rejected.jsonl").read_text().splitlines()]
    assert {(r["image_id"], r["reason"]) for r in reports} >= {
        ("US20250204297A1__99", "listed in test.txt but not a valid entry of the JSON"),
        ("US20250204297A1__1", "empty detailed description"),
    }
    assert main(["export-llava", "--root", str(root)]) == 0
    assert [s["id"] for s in json.loads((root / "llava_json" / "brief_val").read_text())] == ["US20250204297A1__13"]
    assert len(json.loads((root / "llava_json" / "detailed_train").read_text())) == 2
    with pytest.raises(SystemExit):
        main(["build", "--root", str(root), "--ratios", "0.5,0.6,0.1"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "--workers", "0"], "argument --workers: 0 is not an integer >= 1"),
        (["build", "--max-shard-mb", "0"], "argument --max-shard-mb: 0 is not an integer >= 1"),
        (["download", "--workers", "0"], "argument --workers: 0 is not an integer >= 1"),
        (["download", "--timeout", "0"], "argument --timeout: 0 is not a number > 0"),
        (["download", "--retries", "-1"], "argument --retries: -1 is not an integer >= 0"),
        (["download", "--num-shards", "0"], "argument --num-shards: 0 is not an integer >= 1"),
        (["ocr", "--workers", "0"], "argument --workers: 0 is not an integer >= 1"),
        (["ocr", "--timeout", "nan"], "argument --timeout: nan is not a number > 0"),
    ],
)
def test_numbers_out_of_range_are_refused_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--root", str(tmp_path)])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip().endswith(message)


def test_export_llava_removes_a_killed_exports_temporaries(root):
    llava = root / "llava_json"
    (llava / ".work.tmp-0123456789ab").mkdir(parents=True)
    (llava / ".brief_train.tmp-0123456789ab").write_text('[{"id": "half')
    assert main(["export-llava", "--root", str(root)]) == 0
    expected = ["brief_train", "brief_val", "detailed_train", "detailed_val"]
    assert sorted(path.name for path in llava.iterdir()) == expected


def test_run_all_takes_the_steps_options_objects(root, capsys):
    from dataset_builder import AllOptions, BuildOptions, ExportOptions, run_all

    options = AllOptions(
        skip=("download", "ocr"),
        export_llava=True,
        build=BuildOptions(workers=1, ratios={"train": 1.0, "validation": 0.0, "test": 0.0}),
        export=ExportOptions(ratios={"train": 1.0, "validation": 0.0, "test": 0.0}),
    )
    assert run_all(root, options) == 0
    out = capsys.readouterr().out
    assert "== download" not in out and "== ocr" not in out and out.index("== build") < out.index("== export-llava")
    assert sorted(path.name for path in (root / "patentdesc-355k" / "brief").iterdir()) == [
        "train-00000-of-00001.parquet"
    ]
    entries = json.loads((root / "PatentDesc-355k.json").read_text())
    briefs = [image_id for image_id, entry in entries.items() if entry["brief_description"].strip()]
    assert [sample["id"] for sample in json.loads((root / "llava_json" / "brief_train").read_text())] == briefs
    with pytest.raises(ValueError, match=r"\['export-llava'\] are not steps that can be skipped"):
        AllOptions(skip=("export-llava",))

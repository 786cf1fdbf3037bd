"""The `patentlmm` command: init-tiny writes a loadable folder; describe prints or writes descriptions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from patentlmm.cli import main


@pytest.fixture(scope="module")
def cli_tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "tiny"
    assert main(["init-tiny", str(folder), "--text-layers", "1", "--vision-layers", "1"]) == 0
    return folder


def test_init_tiny_writes_a_model_with_the_requested_shape(cli_tiny_dir):
    config = json.loads((cli_tiny_dir / "config.json").read_text())
    assert config["model_type"] == "patentlmm"
    assert config["text_config"]["num_hidden_layers"] == 1 and config["vision_config"]["num_hidden_layers"] == 1
    assert (cli_tiny_dir / "model.safetensors").is_file() and (cli_tiny_dir / "ocr_tokenizer").is_dir()


def test_describe_writes_jsonl_for_each_figure(cli_tiny_dir, figures, tmp_path):
    paths = [str(figures[i]["path"]) for i in ("US20250204297A1__8", "US20250204297A1__12")]
    output = tmp_path / "out" / "descriptions.jsonl"
    argv = [
        "describe",
        "--model",
        str(cli_tiny_dir),
        "--max-new-tokens",
        "3",
        "--batch-size",
        "2",
        "--output",
        str(output),
    ]
    assert main([*argv, *paths]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["image_id"] for row in rows] == ["US20250204297A1__8", "US20250204297A1__12"]
    assert all(row["type"] == "brief" and isinstance(row["prediction"], str) for row in rows)
    assert not list(output.parent.glob("*.tmp"))


def test_describe_prints_tab_separated_lines_from_the_console_script(cli_tiny_dir, figures):
    path = str(figures["US20250204297A1__12"]["path"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "patentlmm.cli",
            "describe",
            "--model",
            str(cli_tiny_dir),
            "--max-new-tokens",
            "2",
            path,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("US20250204297A1__12\t")


def test_describe_names_missing_images(cli_tiny_dir, tmp_path):
    with pytest.raises(SystemExit, match=r"Not image files: .*nope\.png \(no such file\)\.$"):
        main(["describe", "--model", str(cli_tiny_dir), str(tmp_path / "nope.png")])


def test_a_model_whose_ocr_engine_needs_a_missing_extra_gets_a_one_line_error(cli_tiny_dir, figures, tmp_path):
    """A real absence: the child's import system cannot find rapidocr_onnxruntime (the `ocr` extra), and the tiny
    model's processor reads figures with the `drawing` engine, as `ocr` and `dataset ocr` do by default."""
    path = str(figures["US20250204297A1__12"]["path"])
    (tmp_path / "images").mkdir()
    shutil.copy(path, tmp_path / "images")
    dataset_ocr = ["dataset", "ocr", "--root", str(tmp_path), "--workers", "1"]
    launcher = (
        "import sys\nsys.modules['rapidocr_onnxruntime'] = None\n"
        "from patentlmm.cli import main\nsys.exit(main())"
    )
    describe = ["describe", "--model", str(cli_tiny_dir), "--max-new-tokens", "1", path]
    for command in (describe, ["ocr", path], dataset_ocr):
        result = subprocess.run(
            [sys.executable, "-c", launcher, *command], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith(f"patentlmm {command[0]}: The rapidocr/drawing OCR engines need rapidocr-onnxruntime: "
                               "pip install 'patentlmm[ocr]'"), last  # fmt: skip


def test_describe_engine_is_the_deprecated_name_of_backend(cli_tiny_dir, figures, capsys):
    path = str(figures["US20250204297A1__12"]["path"])
    argv = ["describe", "--model", str(cli_tiny_dir), "--max-new-tokens", "1", "--engine", "transformers", path]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "patentlmm describe: --engine is deprecated, use --backend" in captured.err
    assert captured.out.startswith("US20250204297A1__12\t")

"""`patentlmm ocr` (`patentlmm/cli/ocr.py`) on the bundled figures with the real engines."""

from __future__ import annotations

import json

import pytest

from processing.images import load_image
from processing.ocr_engines import OCR_ENGINES
from processing.ocr_tesseract import run_tesseract


def test_ocr_command_json_lines_and_bad_files(figures, tmp_path, capsys):
    from patentlmm.cli import main

    path = figures["US20250204297A1__12"]["path"]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert (
        main(["ocr", str(path), str(broken), "--engine", "tesseract", "--settings", '{"config": "--psm 11"}', "--json"])
        == 1
    )
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    read = json.loads(line)
    expected = run_tesseract(load_image(path), config="--psm 11")
    assert read == {"image": str(path), "engine": "tesseract", "words": expected[0], "boxes": expected[1]}
    assert f"patentlmm ocr: {broken}:" in err


def test_ocr_command_drawing_engine_and_list(figures, capsys):
    from patentlmm.cli import main

    assert main(["ocr", str(figures["US20250204297A1__12"]["path"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{figures['US20250204297A1__12']['path']} (drawing, ") and " 21" in out
    assert main(["ocr", "--list-engines"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in listed] == list(OCR_ENGINES)
    assert listed[-1].endswith("(default)")


def test_ocr_command_bad_settings_are_one_line_naming_the_setting(figures):
    from patentlmm.cli import main

    path = str(figures["US20250204297A1__12"]["path"])
    for settings, message in (
        ('{"det_side": 0}', "bad --settings for drawing: The drawing OCR engine's setting det_side=0 is out of range"),
        ('{"psm": 11}', "bad --settings for drawing: The drawing OCR engine has no setting psm"),
    ):
        with pytest.raises(SystemExit) as raised:
            main(["ocr", path, "--settings", settings])
        assert str(raised.value).startswith(f"patentlmm ocr: {message}")
    with pytest.raises(SystemExit, match=r"config='--psm 99': --psm takes an integer from 0 to 13"):
        main(["ocr", path, "--engine", "tesseract", "--settings", '{"config": "--psm 99"}'])

"""The OCR engine registry (`processing/ocr_engines.py`) and the settings checks of every engine: each bad setting
is refused when the engine is made (by name, from a saved dict, in a processor folder), the error naming it; the
OCR modules import one way, without a circle."""

from __future__ import annotations

import ast
import copy
import json

import pytest

from helpers import REPO
from processing.ocr_engine import OcrSettingError
from processing.ocr_engines import OCR_ENGINES, load_ocr_engine, ocr_engine_from_dict
from processing.processing_patentlmm import PatentLMMProcessor


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"engine": "drawing", "det_side": 0}, r"drawing OCR engine's setting det_side=0 is out of range: it must "
                                                r"be an integer from 32 to 8192"),
        ({"engine": "rapidocr", "det_side": 100_000}, r"rapidocr OCR engine's setting det_side=100000 is out of range"),
        ({"engine": "rapidocr", "min_confidence": 1.5}, r"setting min_confidence=1.5 is out of range: it must be a "
                                                        r"number from 0 to 1"),
        ({"engine": "drawing", "threads": 0}, r"setting threads=0 is out of range"),
        ({"engine": "drawing", "threads": True}, r"setting threads=True is out of range"),
        ({"engine": "drawing", "min_glyph": "14"}, r"setting min_glyph='14' is out of range"),
        ({"engine": "drawing", "min_glyph": 60, "max_glyph": 30}, r"min_glyph=60 and max_glyph=30: max_glyph must be "
                                                                   r"at least min_glyph"),
        ({"engine": "drawing", "detect_orientation": "no"}, r"detect_orientation='no' is not true/false"),
        ({"engine": "drawing", "det_size": 960}, r"The drawing OCR engine has no setting det_size; its settings: "
                                                 r"\['min_glyph'"),
        ({"engine": "tesseract", "config": "--psm 99"}, r"config='--psm 99': --psm takes an integer from 0 to 13, "
                                                        r"got '99'"),
        ({"engine": "tesseract", "config": "--oem"}, r"config='--oem': --oem takes an integer from 0 to 3, got None"),
        ({"engine": "tesseract", "config": "--user-words 'a b"}, r"config=\"--user-words 'a b\": No closing quotation"),
        ({"engine": "tesseract", "lang": "eng; rm -rf"}, r"setting lang='eng; rm -rf' is not a language name"),
        ({"engine": "paddle"}, r"Unknown OCR engine 'paddle'; choose one of \['drawing', 'rapidocr', 'tesseract'\]"),
        ({"det_side": 960}, r"needs its 'engine' name"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_naming_it(spec, message):
    with pytest.raises(OcrSettingError, match=message):
        ocr_engine_from_dict(spec)


def test_good_settings_at_the_edges_of_their_ranges_are_taken():
    assert load_ocr_engine("drawing", det_side=32, min_numeral_confidence=0, threads=1).det_side == 32
    assert load_ocr_engine("rapidocr", min_confidence=1).min_confidence == 1
    assert load_ocr_engine("tesseract", lang="eng+osd", config="--psm 11 --oem 1").config == "--psm 11 --oem 1"


def test_a_processor_folder_with_a_bad_engine_setting_is_refused_naming_it(tiny, tmp_path):
    _, processor = tiny
    processor = copy.copy(processor)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    config["ocr_engine"] = {**load_ocr_engine("drawing").to_dict(), "det_side": 0}
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(OcrSettingError, match="det_side=0 is out of range"):
        PatentLMMProcessor.from_pretrained(tmp_path)


def test_every_engine_is_registered_with_its_summary():
    assert list(OCR_ENGINES) == ["tesseract", "rapidocr", "drawing"]
    for name, engine in OCR_ENGINES.items():
        assert engine.name == name and engine.summary and "\n" not in engine.summary


def _relative_imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_the_ocr_modules_import_one_way():
    """No circle among processing/ocr*.py; the engines share PP-OCR through `ocr_pp`, never each other's modules;
    only the registry knows the engines."""
    modules = {path.stem: _relative_imports(path) for path in (REPO / "processing").glob("ocr*.py")}
    assert set(modules) == {"ocr_engine", "ocr_engines", "ocr_tesseract", "ocr_pp", "ocr_rapidocr", "ocr_drawing",
                            "ocr_tokens"}  # fmt: skip
    ocr_modules = {name: {m for m in imports if m in modules} for name, imports in modules.items()}
    order: list[str] = []
    while len(order) < len(ocr_modules):  # a topological order exists only without a circle
        ready = sorted(n for n, deps in ocr_modules.items() if n not in order and deps <= set(order))
        assert ready, f"a circle among {sorted(set(ocr_modules) - set(order))}"
        order += ready
    assert ocr_modules["ocr_drawing"] == {"ocr_engine", "ocr_pp"}
    assert ocr_modules["ocr_rapidocr"] == {"ocr_engine", "ocr_pp"}
    assert [n for n, deps in ocr_modules.items() if "ocr_drawing" in deps] == ["ocr_engines"]

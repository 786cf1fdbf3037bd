"""The OCR engine registry (`processing/ocr_engines.py`) and the settings checks of every engine: each bad setting
is refused when the engine is made (by name, from a saved dict, in a processor folder), the error naming it; the
OCR modules import one way, without a circle; a processor saves its engine and loads it again (transformers 5 and
4.57)."""

from __future__ import annotations

import ast
import copy
import json

import pytest

from helpers import REPO, run_outside_repo
from processing.ocr_base import OcrSettingError
from processing.ocr_engines import (
    DEFAULT_OCR_ENGINE,
    OCR_ENGINES,
    PAPER_OCR_ENGINE,
    load_ocr_engine,
    ocr_engine_from_dict,
)
from processing.ocr_tesseract import TesseractEngine
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
    assert set(modules) == {"ocr_base", "ocr_engines", "ocr_tesseract", "ocr_pp", "ocr_rapidocr", "ocr_drawing",
                            "ocr_tokens"}  # fmt: skip
    ocr_modules = {name: {m for m in imports if m in modules} for name, imports in modules.items()}
    order: list[str] = []
    while len(order) < len(ocr_modules):  # a topological order exists only without a circle
        ready = sorted(n for n, deps in ocr_modules.items() if n not in order and deps <= set(order))
        assert ready, f"a circle among {sorted(set(ocr_modules) - set(order))}"
        order += ready
    assert ocr_modules["ocr_drawing"] == {"ocr_base", "ocr_pp"}
    assert ocr_modules["ocr_rapidocr"] == {"ocr_base", "ocr_pp"}
    assert [n for n, deps in ocr_modules.items() if "ocr_drawing" in deps] == ["ocr_engines"]


_LOAD_ENGINE_WITH_TRANSFORMERS4 = """
import json, sys, transformers
from transformers import AutoProcessor
processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
print(json.dumps({"transformers": transformers.__version__, "engine": processor.ocr_engine.to_dict()}))
"""


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


def test_engines_are_listed_and_unknown_names_rejected():
    assert list(OCR_ENGINES) == ["tesseract", "rapidocr", "drawing"]
    assert (PAPER_OCR_ENGINE, DEFAULT_OCR_ENGINE) == ("tesseract", "drawing")
    with pytest.raises(ValueError, match=r"Unknown OCR engine 'paddle'; choose one of \['drawing', 'rapidocr'"):
        load_ocr_engine("paddle")


def test_engine_settings_round_trip_and_keys_separate_engines_and_settings():
    engines = [
        load_ocr_engine("tesseract"),
        load_ocr_engine("tesseract", config="--psm 11"),
        load_ocr_engine("tesseract", lang="deu"),
        load_ocr_engine("rapidocr"),
        load_ocr_engine("drawing"),
        load_ocr_engine("drawing", det_side=1280),
    ]
    assert len({engine.key for engine in engines}) == len(engines)
    for engine in engines:
        spec = json.loads(json.dumps(engine.to_dict()))
        assert ocr_engine_from_dict(spec) == engine and ocr_engine_from_dict(spec).key == engine.key
    assert engines[1].to_dict() == {"engine": "tesseract", "lang": None, "config": "--psm 11"}
    assert engines[0].key.startswith("tesseract-") and len(engines[0].key) == len("tesseract-") + 8


def test_processor_saves_and_reloads_its_engine(processor, tmp_path):
    custom = copy.copy(processor)
    custom.ocr_engine = load_ocr_engine("drawing", det_side=1280)
    custom.save_pretrained(tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "processor_config.json").read_text())
    assert saved["ocr_engine"] == {**load_ocr_engine("drawing").to_dict(), "det_side": 1280}
    assert type(custom).from_pretrained(tmp_path / "p").ocr_engine == custom.ocr_engine
    # Folders saved before engines existed (ocr_lang / tesseract_config, no ocr_engine) load with Tesseract.
    del saved["ocr_engine"]
    saved.update(ocr_lang="eng", tesseract_config="--psm 11")
    (tmp_path / "p" / "processor_config.json").write_text(json.dumps(saved))
    assert type(custom).from_pretrained(tmp_path / "p").ocr_engine == TesseractEngine("eng", "--psm 11")
    with pytest.raises(ValueError, match="inside ocr_engine"):
        type(custom).from_pretrained(tmp_path / "p", ocr_engine="drawing")
    overridden = type(custom).from_pretrained(tmp_path / "p", ocr_engine="drawing", ocr_lang=None, tesseract_config="")
    assert overridden.ocr_engine == load_ocr_engine("drawing")


def test_transformers4_loads_the_processor_with_its_engine(processor, tmp_path, transformers4_python):
    custom = copy.copy(processor)
    custom.ocr_engine = load_ocr_engine("drawing", det_side=1280)
    folder = tmp_path / f"engine-{tmp_path.name}"  # a fresh name: transformers caches remote code by folder name
    custom.save_pretrained(folder)
    script = tmp_path / "load.py"
    script.write_text(_LOAD_ENGINE_WITH_TRANSFORMERS4)
    report = json.loads(run_outside_repo(transformers4_python, script, str(folder)).splitlines()[-1])
    assert report["transformers"].startswith("4.")
    assert report["engine"] == custom.ocr_engine.to_dict()

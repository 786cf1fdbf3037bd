"""`patentlmm describe` on the tiny model over the bundled real figures: dataset split, resume, batching, pipeline."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from patentlmm.cli import main
from patentlmm.inference.describe import DescribeOptions, describe, iter_descriptions, prepare_output
from patentlmm.inference.figures import Figure
from patentlmm.inference.generation import generate_batch
from processing import build_prompt
from processing.ocr_engines import load_ocr_engine
from processing.ocr_tesseract import TesseractEngine

IDS = ["US20250204297A1__1", "US20250204297A1__8", "US20250204297A1__12", "US20250204297A1__13", "US20250204297A1__16"]


@pytest.fixture(scope="module")
def ocr(tiny, figures) -> dict[str, tuple[list[str], list[list[int]]]]:
    """The tiny processor's OCR (its engine) of the five figures, run once for the module."""
    _, processor = tiny
    return {i: processor.ocr(figures[i]["path"]) for i in IDS}


@pytest.fixture(scope="module")
def figures_dataset(tmp_path_factory, figures, ocr) -> Path:
    """A `load_dataset(folder, "brief")` Parquet dataset of the five real figures; precomputed OCR for all but the
    first figure (which describe then OCRs with the processor's engine)."""
    datasets = pytest.importorskip("datasets")
    rows = {"image_id": [], "image": [], "description": [], "ocr_words": [], "ocr_boxes": []}
    for index, image_id in enumerate(IDS):
        words, boxes = (None, None) if index == 0 else ocr[image_id]
        rows["image_id"].append(image_id)
        rows["image"].append(str(figures[image_id]["path"]))
        rows["description"].append(figures[image_id]["brief_description"])
        rows["ocr_words"].append(words)
        rows["ocr_boxes"].append(boxes)
    features = datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "image": datasets.Image(),
            "description": datasets.Value("string"),
            "ocr_words": datasets.List(datasets.Value("string")),
            "ocr_boxes": datasets.List(datasets.List(datasets.Value("int32"))),
        }
    )
    folder = tmp_path_factory.mktemp("figures-dataset")
    (folder / "brief").mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "brief" / "test-00000.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: brief\n  data_files:\n  - split: test\n    path: brief/test-*.parquet\n---\n",
        encoding="utf-8",
    )
    return folder


def _prepared(processor, figures, ocr, ids):
    """The figures of `ids` prepared by the processor with their precomputed OCR."""
    words, boxes = zip(*(ocr[i] for i in ids))
    return processor.prepare([figures[i]["path"] for i in ids], ocr_words=words, ocr_boxes=boxes)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dataset_split_is_described_and_resumed_after_an_interruption(figures_dataset, tiny, tiny_dir, tmp_path):
    output = tmp_path / "preds.jsonl"
    # First run (the CLI, model loaded from its folder) stops after one batch of two figures ...
    argv = ["describe", "--model", str(tiny_dir), "--dataset", str(figures_dataset), "--split", "test"]
    argv += ["--config", "brief", "--batch-size", "2", "--max-new-tokens", "2", "--limit", "2", "--output", str(output)]
    assert main(argv) == 0
    first = _rows(output)
    assert len(first) == 2
    # ... and a kill in the middle of the next write leaves a torn line behind.
    with output.open("a", encoding="utf-8") as handle:
        handle.write('{"image_id": "US2025020')
    model, processor = tiny
    options = DescribeOptions(dataset=str(figures_dataset), output=output, batch_size=2, max_new_tokens=2)
    written = describe(model, options, processor=processor)
    rows = _rows(output)
    assert len(written) == 3 and rows[:2] == first
    assert sorted(row["image_id"] for row in rows) == sorted(IDS)  # every id once: no duplicates, none lost
    by_id = {row["image_id"]: row for row in rows}
    assert by_id["US20250204297A1__8"]["reference"].startswith("FIG. 8: is a view of FIG. 7")
    assert all(row["type"] == "brief" and isinstance(row["prediction"], str) for row in rows)
    # The figure's OCR references: precomputed OCR for __8, Tesseract for __1 (it reads only "Figure 1" there).
    assert {"16", "11"} <= set(by_id["US20250204297A1__8"]["figure_numerals"])
    assert by_id["US20250204297A1__8"]["figure_labels"] == ["8"]
    assert by_id["US20250204297A1__1"]["figure_labels"] == ["1"]
    assert prepare_output(output, "brief") == set(IDS) and prepare_output(output, "detailed") == set()
    # A third run has nothing left to do.
    options = DescribeOptions(dataset=str(figures_dataset), output=output, max_new_tokens=2)
    assert describe(model, options, processor=processor) == []


def test_batches_are_sorted_by_ocr_length_and_rows_keep_input_order(tiny, figures, ocr):
    model, processor = tiny
    lengths = {i: len(processor.ocr_tokenizer(ocr[i][0], boxes=ocr[i][1])["input_ids"]) for i in IDS}
    batch_figures = [Figure(i, figures[i]["path"], None, *ocr[i]) for i in IDS]
    batches = list(iter_descriptions(model, processor, batch_figures, DescribeOptions(max_new_tokens=1, batch_size=2)))
    ids = [[row["image_id"] for row in rows] for rows in batches]
    longest_first = sorted(IDS, key=lambda i: -lengths[i])
    assert [len(batch) for batch in ids] == [2, 2, 1]
    assert set(ids[0]) == set(longest_first[:2])
    assert all(batch == sorted(batch, key=IDS.index) for batch in ids)


def test_each_figure_is_read_once_and_described_with_what_its_ocr_gives(tiny, figures):
    """describe prepares each figure once (`processor.prepare`): one OCR read a figure, however it is sorted and
    batched, and the rows' numerals are that read's."""
    model, processor = tiny
    reads = []

    @dataclasses.dataclass(frozen=True)
    class CountingTesseract(TesseractEngine):  # the real engine (same settings, same key), counting its reads
        def __call__(self, source, timeout=None):
            reads.append(source.size)
            return super().__call__(source, timeout)

    processor = copy.copy(processor)
    processor.ocr_engine = CountingTesseract()
    chosen = IDS[1:4]
    batch_figures = [Figure(i, figures[i]["path"]) for i in chosen]
    options = DescribeOptions(max_new_tokens=1, batch_size=2, fidelity_ocr="tesseract")
    rows = [row for rows in iter_descriptions(model, processor, batch_figures, options) for row in rows]
    assert sorted(reads) == sorted(Image.open(figures[i]["path"]).size for i in chosen)  # once each, fidelity too
    read = {row["image_id"]: row["figure_numerals"] for row in rows}
    assert {"16", "11"} <= set(read["US20250204297A1__8"])


def test_batched_generation_matches_one_figure_at_a_time(tiny, figures, ocr):
    """Left padding and per-sample image-feature counts (8 has far more OCR tokens than 12) leave greedy output
    unchanged."""
    model, processor = tiny
    chosen = _prepared(processor, figures, ocr, ["US20250204297A1__8", "US20250204297A1__12"])
    prompt = build_prompt("brief")
    batched = generate_batch(model, processor, chosen, prompt, max_new_tokens=4)
    alone = [generate_batch(model, processor, [figure], prompt, max_new_tokens=4)[0] for figure in chosen]
    assert batched == alone


def test_static_and_dynamic_kv_caches_give_the_same_descriptions(tiny, figures, ocr):
    model, processor = tiny
    batch = _prepared(processor, figures, ocr, IDS[:3])  # different OCR lengths: left padding
    prompt = build_prompt("brief")
    static = generate_batch(model, processor, batch, prompt, max_new_tokens=12, cache_implementation="static")
    dynamic = generate_batch(model, processor, batch, prompt, max_new_tokens=12, cache_implementation=None)
    assert static == dynamic and all(static)


def test_image_text_to_text_pipeline_with_chat_messages(tiny_dir, figures):
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=str(tiny_dir), trust_remote_code=True)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "url": str(figures["US20250204297A1__8"]["path"])},
                {"type": "text", "text": "Write a brief description for this patent image."},
            ],
        }
    ]
    out = pipe(text=messages, max_new_tokens=3)
    reply = out[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and isinstance(reply["content"], str) and reply["content"].strip()


# ---------------------------------------------------------------------------------------------- bad input


def _bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` RGB pixels and whose data holds almost none."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" + b"\xff" * 24))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def test_bad_files_are_reported_by_id_and_the_good_figures_are_written(tiny_dir, figures, tmp_path, caplog):
    """Among real figures: a text file, a decompression-bomb header, a truncated PNG and a 1 x 30000 strip. Each is
    logged with its id and reason; the good figures are written; a rerun describes nothing new and does not fail."""
    from PIL import Image

    good = [figures[i]["path"] for i in IDS[:2]]
    (tmp_path / "notes.png").write_text("not a figure")
    (tmp_path / "bomb.png").write_bytes(_bomb_header(100_000, 100_000))
    (tmp_path / "cut.png").write_bytes(good[0].read_bytes()[:300])
    Image.new("1", (1, 30_000), 1).save(tmp_path / "strip.png")
    bad = [tmp_path / name for name in ("notes.png", "bomb.png", "cut.png", "strip.png")]
    output = tmp_path / "out.jsonl"
    argv = ["describe", "--model", str(tiny_dir), "--max-new-tokens", "2", "--batch-size", "2", "--output", str(output)]
    with caplog.at_level("WARNING", logger="patentlmm.inference.figures"):
        assert main([*argv, str(bad[0]), str(good[0]), str(bad[1]), str(bad[2]), str(good[1]), str(bad[3])]) == 0
    assert [json.loads(line)["image_id"] for line in output.read_text().splitlines()] == IDS[:2]
    skipped = {record.args[0]: record.args[1] for record in caplog.records if record.msg.startswith("Skipped")}
    assert sorted(skipped) == ["bomb", "cut", "notes", "strip"]
    assert "cannot identify image file" in skipped["notes"]
    assert "100000x100000" in skipped["bomb"] and "over the cap" in skipped["bomb"]
    assert "could not be decoded" in skipped["cut"]
    assert "padded to a square it is 30000x30000" in skipped["strip"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="patentlmm.inference.figures"):
        assert main([*argv, *map(str, good + bad)]) == 0  # the rerun skips the written ids, reports the bad ones again
    assert len(output.read_text().splitlines()) == 2
    assert sorted(r.args[0] for r in caplog.records if r.msg.startswith("Skipped")) == ["bomb", "cut", "notes", "strip"]


def test_a_damaged_line_in_the_resumable_jsonl_is_skipped_with_a_warning(tmp_path, caplog):
    output = tmp_path / "out.jsonl"
    rows = [{"image_id": "US1__1", "type": "brief"}, {"image_id": "US1__2", "type": "brief"}]
    output.write_text(json.dumps(rows[0]) + "\n" + '{"image_id": "US1__3", "typ\x00\n' + "[1, 2]\n"
                      + json.dumps(rows[1]) + "\n" + '{"image_id": "US1__4"')  # fmt: skip
    with caplog.at_level("WARNING", logger="patentlmm.inference.describe"):
        assert prepare_output(output, "brief") == {"US1__1", "US1__2"}
    warnings = [record.getMessage() for record in caplog.records]
    assert any("line 2 is damaged" in w for w in warnings) and any("line 3 is damaged" in w for w in warnings)
    assert output.read_text().endswith(json.dumps(rows[1]) + "\n")  # the torn last line is cut, the rest kept


def test_files_with_the_same_name_in_two_folders_get_distinct_ids(tmp_path, figures):
    from patentlmm.inference.figures import figures_from_files, file_ids

    for folder in ("a", "b", "c/a"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "fig.png").write_bytes(figures[IDS[0]]["path"].read_bytes())
    paths = [tmp_path / "a" / "fig.png", tmp_path / "b" / "fig.png", figures[IDS[1]]["path"]]
    assert file_ids(paths) == ["a/fig", "b/fig", IDS[1]]
    assert file_ids([tmp_path / "a" / "fig.png", tmp_path / "c" / "a" / "fig.png"]) == [
        f"{tmp_path.name}/a/fig",
        "c/a/fig",
    ]
    twice = figures_from_files([tmp_path / "a" / "fig.png", tmp_path / "a" / ".." / "a" / "fig.png"])
    assert [figure.image_id for figure in twice] == ["fig"]  # one file given twice is described once


@pytest.mark.parametrize("option", ["--batch-size", "--max-new-tokens", "--limit"])
@pytest.mark.parametrize("value, reason", [("0", "0 is not an integer >= 1"), ("-2", "-2 is not an integer >= 1"),
                                           ("two", "two is not an integer >= 1")])  # fmt: skip
def test_invalid_numeric_options_are_argparse_errors(option, value, reason, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["describe", "--model", "m", option, value, "fig.png"])
    assert exit_info.value.code == 2
    assert f"argument {option}: {reason}" in capsys.readouterr().err


def test_model_folders_that_cannot_load_get_a_one_line_reason(tiny_dir, tmp_path):
    import shutil

    from patentlmm.inference.loading import load_model_and_processor

    no_ocr = shutil.copytree(tiny_dir, tmp_path / "no-ocr", ignore=shutil.ignore_patterns("ocr_tokenizer"))
    with pytest.raises(FileNotFoundError, match=r"no-ocr is not a PatentLMM folder: it has no ocr_tokenizer"):
        load_model_and_processor(str(no_ocr))
    for name, damage in (("truncated", lambda data: data[: len(data) // 3]), ("header", lambda data: b"\xff" * 8)):
        folder = shutil.copytree(tiny_dir, tmp_path / name)
        weights = folder / "model.safetensors"
        weights.write_bytes(damage(weights.read_bytes()))
        with pytest.raises(ValueError, match=rf"{weights} is not a valid safetensors file: ") as caught:
            load_model_and_processor(str(folder))
        assert "\n" not in str(caught.value)


def test_fidelity_numerals_come_from_the_drawing_engine_whatever_the_models_ocr(tiny, figures):
    """A model served with the paper's Tesseract still gets its figures' numerals read by the `drawing` engine."""
    model, processor = tiny
    processor = copy.copy(processor)
    processor.ocr_engine = TesseractEngine()
    figure = [Figure("US20250204297A1__12", figures["US20250204297A1__12"]["path"])]
    paper_options = DescribeOptions(max_new_tokens=1, fidelity_ocr="tesseract")
    (paper,) = next(iter_descriptions(model, processor, figure, paper_options))
    (row,) = next(iter_descriptions(model, processor, figure, DescribeOptions(max_new_tokens=1)))
    assert paper["figure_numerals"] == [] and paper["fidelity_ocr"] == TesseractEngine().key
    assert "21" in row["figure_numerals"] and row["fidelity_ocr"] == load_ocr_engine("drawing").key


def test_no_repeat_ngram_guard_stops_loops(tiny, figures, ocr):
    """The random tiny model loops under plain greedy decoding; with `no_repeat_ngram_size=1` no token comes twice."""
    model, processor = tiny
    batch = _prepared(processor, figures, ocr, IDS[:2])
    prompt = build_prompt("brief")

    def tokens(no_repeat_ngram_size: int) -> list[list[int]]:
        texts = generate_batch(model, processor, batch, prompt, 48, no_repeat_ngram_size=no_repeat_ngram_size)
        return [processor.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]

    assert any(len(set(ids)) < len(ids) for ids in tokens(0))
    assert all(len(set(ids)) == len(ids) > 40 for ids in tokens(1))


def test_describe_options_are_checked_in_python_too():
    for fields, message in (({"batch_size": 0}, "batch_size must be at least 1, got 0"),
                            ({"limit": -1}, "limit must be at least 1, got -1"),
                            ({"desc_type": "short"}, "desc_type must be one of ('brief', 'detailed'), got 'short'"),
                            ({"cache": "warm"}, "cache must be one of ('static', 'dynamic'), got 'warm'")):  # fmt: skip
        with pytest.raises(ValueError) as caught:
            DescribeOptions(**fields)
        assert str(caught.value) == f"{message}."
    with pytest.raises(ValueError, match="Pass either images or dataset"):
        describe("unused", DescribeOptions())
    with pytest.raises(ValueError, match="Pass either images or dataset"):
        describe("unused", DescribeOptions(images=["a.png"], dataset="d"))


def test_the_command_line_becomes_describe_options():
    from patentlmm.cli import build_parser
    from patentlmm.cli.arguments import options_from_args

    argv = ["describe", "--model", "m", "a.png", "b.png", "--type", "detailed", "--cache", "dynamic", "--limit", "3",
            "--vllm-args", '{"max_model_len": 2048}', "--output", "out.jsonl"]  # fmt: skip
    args = build_parser(argv).parse_args(argv)
    options = options_from_args(DescribeOptions, args)
    assert args.model == "m"
    assert options == DescribeOptions(images=[Path("a.png"), Path("b.png")], desc_type="detailed", cache="dynamic",
                                      limit=3, vllm_args={"max_model_len": 2048}, output=Path("out.jsonl"))  # fmt: skip
    defaults = options_from_args(DescribeOptions, build_parser(argv[:3]).parse_args(argv[:3]))
    assert defaults == DescribeOptions()


def test_dataset_rows_whose_image_does_not_decode_are_skipped_and_reported(tmp_path, tiny, figures, caplog):
    """A Parquet split of four real figures and two damaged images (Pillow raises SyntaxError and IndexError on
    them): the four are described, the two are logged with their ids, and a rerun describes nothing new."""
    datasets = pytest.importorskip("datasets")
    from helpers.damaged import damaged_images

    damaged = damaged_images()
    images = {i: {"bytes": figures[i]["path"].read_bytes(), "path": None} for i in IDS[:4]}
    images["broken-chunk"] = {"bytes": damaged["SyntaxError"], "path": None}
    images["cut-qoi"] = {"bytes": damaged["IndexError"], "path": None}
    order = [IDS[0], "broken-chunk", IDS[1], IDS[2], "cut-qoi", IDS[3]]
    features = datasets.Features({"image_id": datasets.Value("string"), "image": datasets.Image()})
    split = datasets.Dataset.from_dict({"image_id": order, "image": [images[i] for i in order]}, features=features)
    split.to_parquet(str(tmp_path / "test-00000.parquet"))
    model, processor = tiny
    output = tmp_path / "out.jsonl"
    options = DescribeOptions(dataset=str(tmp_path), config="default", output=output, max_new_tokens=1, batch_size=4)
    with caplog.at_level("WARNING", logger="patentlmm.inference.figures"):
        written = describe(model, options, processor=processor)
    assert sorted(row["image_id"] for row in written) == sorted(IDS[:4])
    assert sorted(row["image_id"] for row in _rows(output)) == sorted(IDS[:4])
    assert sorted(r.args[0] for r in caplog.records if r.msg.startswith("Skipped")) == ["broken-chunk", "cut-qoi"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="patentlmm.inference.figures"):
        assert describe(model, options, processor=processor) == []
    assert sorted(r.args[0] for r in caplog.records if r.msg.startswith("Skipped")) == ["broken-chunk", "cut-qoi"]


def test_grounding_defaults_to_all_but_off_for_original_inference():
    """The measured default (docs/describe.md) grounds; the original's prompt format keeps its plain greedy decoding
    (it reproduces the authors' tokens); an explicit choice wins in both."""
    assert DescribeOptions().grounding == "all"
    assert DescribeOptions(prompt_format="original_inference").grounding == "off"
    assert DescribeOptions(prompt_format="original_inference", grounding="numerals").grounding == "numerals"
    assert DescribeOptions(grounding="off").grounding == "off"

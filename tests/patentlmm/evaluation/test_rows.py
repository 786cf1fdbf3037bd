"""`patentlmm eval`'s row-by-row check of its input: wrong types, duplicates, undecodable bytes, torn lines and empty
references, each named by file, line and id; scores only on the valid rows."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("sacrebleu")
pytest.importorskip("rouge_score")
pytest.importorskip("nltk")

from patentlmm.cli.eval import add_arguments, run  # noqa: E402
from patentlmm.evaluation.evaluate import INPUT, evaluate_predictions  # noqa: E402
from patentlmm.evaluation.metrics.patentlmm_metrics import paper_metrics  # noqa: E402
from patentlmm.evaluation.rows import PredictionsError, read_predictions  # noqa: E402


@pytest.fixture(autouse=True)
def nltk_data(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PATENTLMM_NLTK_DATA", str(tmp_path_factory.mktemp("nltk_data")))


def _row(image_id: str, prediction, reference, **extra) -> dict:
    return {"image_id": image_id, "type": "brief", "prediction": prediction, "reference": reference, **extra}


def _every_third_word_changed(text: str) -> str:
    return " ".join("part" if i % 3 == 2 else word for i, word in enumerate(text.split()))


def _damaged_file(tmp_path, figures):
    """A JSONL of good rows (real references) among every kind of bad line; returns (path, good rows)."""
    refs = [entry["brief_description"] for entry in list(figures.values())[:4]]
    good = [_row(f"g{i}", _every_third_word_changed(ref), ref) for i, ref in enumerate(refs)]
    lines = [
        json.dumps(good[0]),
        "",
        json.dumps(_row("num", 3.5, refs[0])),
        json.dumps(good[1]),
        json.dumps(_row("str-numerals", "FIG. 1", refs[1], figure_numerals="12 14", figure_labels=["1"])),
        json.dumps({**good[0], "prediction": "a second copy"}),
        '{"image_id": "bytes", "prediction": "caf\xff"}',
        "[1, 2]",
        json.dumps(good[2]),
        json.dumps(_row("blank", refs[0], "   ")),
        json.dumps(_row("empty", refs[1], "")),
        json.dumps({"image_id": "ref-int", "prediction": "x", "reference": 7}),
        json.dumps(good[3]),
        '{"image_id": "torn", "prediction": "FIG. 9',
    ]
    path = tmp_path / "preds.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8").replace("caf\xff".encode(), b"caf\xff"))
    return path, good


EXPECTED_PROBLEMS = [
    "line 3 [num]: prediction is 3.5 (float), not a string",
    'line 5 [str-numerals]: figure_numerals is "12 14" (str), not a list of strings',
    "line 6 [g0]: the brief id g0 again (first on line 1): counted once",
    "line 7 [bytes]: bytes that are not UTF-8 (at byte 40 of the line)",
    "line 8 [-]: not a JSON object but [1, 2] (list)",
    "line 12 [ref-int]: reference is 7 (int), not a string",
    "line 14 [torn]: a torn last line (no newline at its end: an interrupted write)",
]


def test_each_bad_line_is_named_by_file_line_and_id_and_the_rest_is_kept(tmp_path, figures):
    path, good = _damaged_file(tmp_path, figures)
    checked = read_predictions(path)
    assert checked.problems == [f"{path} {problem}" for problem in EXPECTED_PROBLEMS]
    assert [row["image_id"] for row in checked.rows] == ["g0", "g1", "g2", "blank", "empty", "g3"]
    assert checked.rows[0] == good[0] and checked.read == 13  # the blank line 2 is not a row


def test_scores_come_from_the_valid_rows_and_empty_references_are_counted_not_scored(tmp_path, figures, capsys,
                                                                                     caplog):  # fmt: skip
    path, good = _damaged_file(tmp_path, figures)
    clean = evaluate_predictions(good)["brief"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    output = tmp_path / "metrics.json"
    with caplog.at_level("WARNING", logger="patentlmm.evaluation.evaluate"):
        assert run(parser.parse_args([str(path), "--output", str(output)])) == 0
    assert [record.getMessage() for record in caplog.records] == [f"{path} {p}" for p in EXPECTED_PROBLEMS]
    results = json.loads(output.read_text())
    brief = results["brief"]
    assert brief["metrics"] == clean["metrics"]  # the two rows with blank references change nothing
    assert (brief["samples"], brief["samples_with_reference"], brief["empty_references"]) == (6, 4, 2)
    assert results[INPUT] == {"source": str(path), "rows_read": 13, "rows_scored": 6,
                              "problems": [f"{path} {p}" for p in EXPECTED_PROBLEMS]}  # fmt: skip
    printed = capsys.readouterr().out
    assert "brief: 2 empty or blank references, not scored" in printed
    assert f"scored 6 of the 13 rows of {path}; 7 with problems left out" in printed
    assert "this model (n=4)" in printed
    # Scoring the blank references as real ones (as before) would pull BLEU-2 down by a third.
    rows = read_predictions(path).rows
    as_real = paper_metrics([row["prediction"] for row in rows], [row["reference"] for row in rows])
    assert as_real["bleu2"] < clean["metrics"]["bleu2"] * 2 / 3


def test_rows_given_in_python_are_checked_the_same_way(caplog):
    rows = [_row("a", "FIG. 1 shows it.", "FIG. 1 shows it."), _row("b", None, "x"), {"image_id": "c"}]
    with caplog.at_level("WARNING", logger="patentlmm.evaluation.evaluate"):
        results = evaluate_predictions(rows)
    assert results[INPUT]["problems"] == ["predictions row 2 [b]: prediction is null (NoneType), not a string",
                                          "predictions row 3 [c]: no prediction"]  # fmt: skip
    assert results["brief"]["samples"] == 1


def test_a_file_without_a_valid_row_is_an_error_naming_its_problems(tmp_path, capsys):
    path = tmp_path / "preds.jsonl"
    path.write_text('{"image_id": "a", "prediction": 1}\n{"image_id": "b", "pred')
    with pytest.raises(PredictionsError) as caught:
        evaluate_predictions(path)
    assert str(caught.value) == (f"No valid predictions to evaluate in {path} (2 read).\n"
                                 f"  {path} line 1 [a]: prediction is 1 (int), not a string\n"
                                 f"  {path} line 2 [b]: a torn last line (no newline at its end: an interrupted "
                                 "write)")  # fmt: skip
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit) as exit_info:
        run(parser.parse_args([str(path)]))
    assert str(exit_info.value.code) == f"patentlmm eval: {caught.value}"
    path.write_text('{"image_id": "a", "prediction": "FIG. 1"}\n')  # repaired: the rerun scores it
    assert run(parser.parse_args([str(path)])) == 0

"""dataset_builder readers: streaming PatentDesc-355k.json, split lists, ocr.json and the OCR cache, with every
rejected item reported (id + reason) while the rest is read; splits by patent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_builder import jsonstream
from dataset_builder.diskmap import DiskMap
from dataset_builder.entries import (
    OCR_VOCAB_SIZE,
    iter_entries,
    iter_ocr_cache,
    iter_official_ocr,
    iter_split_file,
)
from dataset_builder.ids import InvalidImageIdError, validate_image_id
from dataset_builder.jsonstream import BrokenFileError, iter_object_entries
from dataset_builder.reports import ReportWriter, read_report
from dataset_builder.splits import SPLITS, SplitAssigner, parse_ratios, split_of_patent
from helpers import REPO
from patentlmm_common.jsonl import JsonlAppender, complete_lines, iter_jsonl


def _entry(brief: str = "A brief.", detailed: str = "A detailed one.") -> dict:
    return {"image_url": "https://example.invalid/x.png", "brief_description": brief, "detailed_description": detailed}


def _reasons(path: Path) -> dict[str | None, list[str]]:
    reasons: dict[str | None, list[str]] = {}
    for line in read_report(path):
        reasons.setdefault(line["image_id"], []).append(line["reason"])
    return reasons


def test_bad_entries_are_reported_and_the_rest_is_read(tmp_path):
    # Written by hand: duplicate keys and invalid UTF-8 cannot come out of json.dumps.
    good = json.dumps(_entry())
    parts = [
        f'"US1111111B2__1": {good}',
        f'"US1111111B2__2": {json.dumps({"image_url": "u", "brief_description": "b"})}',  # missing field
        f'"US1111111B2__3": {json.dumps({**_entry(), "brief_description": 7})}',  # wrong type
        f'"US1111111B2__4": {json.dumps({**_entry(), "detailed_description": None})}',  # null
        '"US1111111B2__5": ["not", "an", "object"]',
        f'"../etc__1": {good}',  # traversal
        f'"a/b__1": {good}',  # path separator
        f'"not-an-id": {good}',
        f'"US1111111B2__1": {json.dumps(_entry("second copy"))}',  # duplicate
        f'"US1111111B2__6": {good}',
    ]
    data = ("{" + ", ".join(parts)).encode() + b', "US1111111B2__7": {"image_url": "u", "brief_description": "bad \xff'
    data += b'\xfe bytes", "detailed_description": ""}, "US1111111B2__8": ' + good.encode() + b"}"
    path = tmp_path / "PatentDesc-355k.json"
    path.write_bytes(data)
    with ReportWriter(tmp_path / "rejected.jsonl", "build") as report:
        records = list(iter_entries(path, report, DiskMap(tmp_path / "seen.sqlite")))
    assert [r.image_id for r in records] == ["US1111111B2__1", "US1111111B2__6", "US1111111B2__8"]
    assert records[0].brief_description == "A brief." and records[0].patent_id == "US1111111B2"
    reasons = _reasons(tmp_path / "rejected.jsonl")
    assert "missing field(s) ['detailed_description']" in reasons["US1111111B2__2"][0]
    assert "'brief_description' is a number, expected a string" in reasons["US1111111B2__3"][0]
    assert "'detailed_description' is a null" in reasons["US1111111B2__4"][0]
    assert "entry is a array" in reasons["US1111111B2__5"][0]
    assert "path separator" in reasons["../etc__1"][0] and "path separator" in reasons["a/b__1"][0]
    assert "<publication>__<figure>" in reasons["not-an-id"][0]
    assert "duplicate image id" in reasons["US1111111B2__1"][0]
    assert "not UTF-8" in reasons["US1111111B2__7"][0]


def test_a_truncated_file_raises_after_the_entries_before_the_damage(tmp_path):
    path = tmp_path / "PatentDesc-355k.json"
    path.write_text('{"US1111111B2__1": ' + json.dumps(_entry()) + ', "US1111111B2__2": {"image_u')
    read = []
    with pytest.raises(ValueError, match="not valid JSON after 1 entries"):
        for record in iter_entries(path):
            read.append(record.image_id)
    assert read == ["US1111111B2__1"]


def test_split_lists_report_bad_lines_conflicts_duplicates_and_unknown_ids(tmp_path):
    splits = tmp_path / "data_splits"
    splits.mkdir()
    (splits / "train.txt").write_text("US1111111B2__1\nUS1111111B2__1\n../etc__1\n\nUS1111111B2__9\nUS2222222B2__1\n")
    (splits / "val.txt").write_text("US2222222B2__1\nUS3333333B2__1\n")
    (splits / "test.txt").write_bytes(b"US4444444B2__1\nUS4444444B2__\xff\n")
    report_path = tmp_path / "rejected.jsonl"
    with ReportWriter(report_path, "build") as report:
        assert [*iter_split_file(splits / "train.txt")] == ["US1111111B2__1", "US1111111B2__1", "US1111111B2__9"] + [
            "US2222222B2__1"
        ]
        assigner = SplitAssigner(splits, tmp_path, report=report)
        assert assigner.split_of("US1111111B2__1") == "train"
        assert assigner.split_of("US3333333B2__1") == "validation"
        assert assigner.split_of("US4444444B2__1") == "test"
        assert assigner.split_of("US2222222B2__1") is None  # in train.txt and val.txt: left out
        assert assigner.split_of("US5555555B2__1") is None  # in no list
        assert assigner.report_unused({"US1111111B2__1", "US3333333B2__1", "US4444444B2__1"}) == 1
        assigner.close()
    reasons = _reasons(report_path)
    assert "listed twice in train.txt" in reasons["US1111111B2__1"][0]
    assert "train.txt line 3" in reasons["../etc__1"][0]
    assert "listed in both train.txt and val.txt" in reasons["US2222222B2__1"][0]
    assert "not in any split list" in reasons["US5555555B2__1"][0]
    assert "listed in train.txt but not a valid entry" in reasons["US1111111B2__9"][0]
    assert any("not UTF-8" in r for rs in reasons.values() for r in rs)


def test_split_by_patent_is_deterministic_and_follows_the_ratios():
    ratios = parse_ratios("0.8,0.1,0.1")
    patents = [f"US{n:07d}B2" for n in range(3000)]
    assigned = [split_of_patent(p, ratios, seed=3) for p in patents]
    assert assigned == [split_of_patent(p, ratios, seed=3) for p in patents]
    assert assigned != [split_of_patent(p, ratios, seed=4) for p in patents]
    shares = {split: assigned.count(split) / len(patents) for split in SPLITS}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["test"] - 0.1) < 0.03
    assert {split_of_patent(p, {"train": 1.0, "validation": 0.0, "test": 0.0}) for p in patents} == {"train"}
    for bad in ("0.5,0.5", "0.9,0.2,-0.1", "a,b,c", "0.5,0.2,0.2"):
        with pytest.raises(ValueError, match="ratios"):
            parse_ratios(bad)


def test_all_txt_alone_restricts_the_figures_and_splits_them_by_patent(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "all.txt").write_text("US1111111B2__1\nUS1111111B2__2\n")
    assigner = SplitAssigner(tmp_path / "splits", tmp_path)
    assert assigner.split_of("US1111111B2__1") == assigner.split_of("US1111111B2__2") == split_of_patent("US1111111B2")
    assert assigner.split_of("US2222222B2__1") is None


def test_official_ocr_json_is_streamed_unpadded_and_truncated_like_the_original(tmp_path):
    long_ids = list(range(600))
    entries = {
        "US1111111B2__1.png": {"input_ids": [[0, 5, 2, 1]], "attention_mask": [[1, 1, 1, 0]], "bbox": [[[0] * 4] * 4]},
        "US1111111B2__2.png": {"input_ids": [long_ids], "attention_mask": [[1] * 600], "bbox": [[[1, 1, 2, 2]] * 600]},
        "US1111111B2__3.png": {"input_ids": [[0, 2]], "bbox": [[[0, 0, 2000, 0], [0, 0, 0, 0]]]},  # box > 1000
        "US1111111B2__4.png": {"attention_mask": [[1]]},  # no ids
        "../x__1.png": {"input_ids": [[0]], "bbox": [[[0, 0, 0, 0]]]},
    }
    path = tmp_path / "ocr.json"
    path.write_text(json.dumps(entries))
    with ReportWriter(tmp_path / "rejected.jsonl", "build") as report:
        rows = {image_id: (ids, boxes) for image_id, ids, boxes in iter_official_ocr(path, report)}
    assert rows["US1111111B2__1"] == ([0, 5, 2], [[0, 0, 0, 0]] * 3)
    assert len(rows["US1111111B2__2"][0]) == 512 and rows["US1111111B2__2"][0][-1] == 599
    assert set(rows) == {"US1111111B2__1", "US1111111B2__2"}
    reasons = _reasons(tmp_path / "rejected.jsonl")
    assert "0-1000" in reasons["US1111111B2__3"][0] and "'input_ids'" in reasons["US1111111B2__4"][0]
    assert "path separator" in reasons["../x__1"][0]


def test_ocr_cache_lines_are_validated_and_a_half_written_line_is_reported(tmp_path):
    good = {"image_id": "US1111111B2__1", "words": ["FIG", "1"], "boxes": [[1, 2, 3, 4], [5, 6, 7, 8]]}
    lines = [
        json.dumps(good),
        json.dumps({**good, "image_id": "US1111111B2__2", "boxes": [[1, 2, 3, 4]]}),  # 2 words, 1 box
        json.dumps({**good, "image_id": "US1111111B2__3", "words": "FIG 1"}),
        json.dumps({"words": [], "boxes": []}),  # no id
        '{"image_id": "US1111111B2__4", "words": ["half',
    ]
    (tmp_path / "ocr_cache.jsonl").write_text("\n".join(lines))
    (tmp_path / "ocr_cache-00001-of-00002.jsonl").write_text(json.dumps({**good, "image_id": "US1111111B2__5"}))
    paths = sorted(tmp_path.glob("ocr_cache*.jsonl"))
    with ReportWriter(tmp_path / "rejected.jsonl", "build") as report:
        rows = list(iter_ocr_cache(paths, report))
    assert [row[0] for row in rows] == ["US1111111B2__5", "US1111111B2__1"]
    lines = read_report(tmp_path / "rejected.jsonl")
    assert [line["image_id"] for line in lines] == ["US1111111B2__2", "US1111111B2__3", None, None]
    reasons = [line["reason"] for line in lines]
    assert len(reasons) == 4 and all("ocr_cache.jsonl line" in reason for reason in reasons)
    assert "2 words but 1 boxes" in reasons[0] and "list of strings" in reasons[1] and "line 5" in reasons[3]


def _read(path: Path, tmp_path: Path) -> tuple[list[str], dict[str | None, list[str]]]:
    with ReportWriter(tmp_path / "rejected.jsonl", "build") as report:
        ids = [record.image_id for record in iter_entries(path, report)]
    return ids, _reasons(tmp_path / "rejected.jsonl")


def test_nan_infinity_and_huge_numbers_fail_their_entry_only(tmp_path):
    """Python's json writes NaN and Infinity and reads any integer; each such entry is judged alone."""
    entries = {
        "US1111111B2__1": _entry(),
        "US1111111B2__2": {**_entry(), "score": float("nan")},  # NaN in a field nothing uses: still not JSON
        "US1111111B2__3": {**_entry(), "brief_description": float("inf")},
        "US1111111B2__4": {**_entry(), "extra": [-float("inf")]},
        "US1111111B2__5": {**_entry(), "brief_description": 2**64},
        "US1111111B2__6": {**_entry(), "views": 2**64},  # valid JSON in an unused field: kept
        "US1111111B2__7": _entry(),
    }
    path = tmp_path / "PatentDesc-355k.json"
    path.write_text(json.dumps(entries))
    ids, reasons = _read(path, tmp_path)
    assert ids == ["US1111111B2__1", "US1111111B2__6", "US1111111B2__7"]
    for key, constant in (("US1111111B2__2", "NaN"), ("US1111111B2__3", "Infinity"), ("US1111111B2__4", "-Infinity")):
        assert reasons[key] == [f"the entry is not valid JSON: {constant} is not a JSON number (Python's json writes "
                                "it, no JSON reader accepts it)"]  # fmt: skip
    assert "'brief_description' is a number" in reasons["US1111111B2__5"][0]


_DEEP_CHILD = """
import resource, sys
from dataset_builder.entries import iter_entries
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ids = [record.image_id for record in iter_entries(sys.argv[1])]
print(ids, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_deeply_nested_unused_field_fails_its_entry_with_flat_memory(tmp_path):
    """A 200 KB entry nested 100,000 deep (the old streaming parse was OOM-killed at 19.5 GB on it) is rejected
    by id; the process's peak memory grows by less than 100 MB; the entries around it are read."""
    depth = 100_000
    deep = json.dumps({**_entry(), "x": "@"})[:-1].replace('"@"', "[" * depth + "]" * depth) + "}"
    good = json.dumps(_entry())
    path = tmp_path / "PatentDesc-355k.json"
    path.write_text(f'{{"US1111111B2__1": {good}, "US1111111B2__2": {deep}, "US1111111B2__3": {good}}}')
    assert path.stat().st_size > 200_000
    result = subprocess.run(
        [sys.executable, "-c", _DEEP_CHILD, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ids, growth_mb = result.stdout.rsplit(" ", 1)
    assert ids == "['US1111111B2__1', 'US1111111B2__3']" and int(growth_mb) < 100
    _, reasons = _read(path, tmp_path)
    assert reasons["US1111111B2__2"] == ["the entry is nested too deeply for a JSON parser"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le"])
def test_json_and_split_lists_with_a_bom_or_in_utf16_are_read_whole(tmp_path, encoding):
    entries = {"US1111111B2__1": _entry("Première vue."), "US1111111B2__2": _entry()}
    path = tmp_path / "PatentDesc-355k.json"
    path.write_text(json.dumps(entries, ensure_ascii=False), encoding=encoding)
    ids, reasons = _read(path, tmp_path)
    assert ids == ["US1111111B2__1", "US1111111B2__2"] and not reasons
    assert next(iter_entries(path)).brief_description == "Première vue."
    split = tmp_path / "train.txt"
    split.write_text("US1111111B2__1\nUS1111111B2__2\n", encoding=encoding)
    assert list(iter_split_file(split)) == ["US1111111B2__1", "US1111111B2__2"]  # the first id is not lost


def test_a_top_level_list_is_refused_with_one_clear_line(tmp_path):
    path = tmp_path / "PatentDesc-355k.json"
    path.write_text(json.dumps([{"image_id": "US1111111B2__1", **_entry()}]))
    with pytest.raises(BrokenFileError, match=r"PatentDesc-355k.json is a JSON array: it must be one JSON object"):
        list(iter_entries(path))


def test_ids_with_a_trailing_newline_are_rejected(tmp_path):
    for bad in ("US1111111B2__1\n", "US1111111B2__1\r\n", "US1111111B2__1 ", "\nUS1111111B2__1"):
        with pytest.raises(InvalidImageIdError):
            validate_image_id(bad)
    path = tmp_path / "PatentDesc-355k.json"
    path.write_text(json.dumps({"US1111111B2__1": _entry(), "US1111111B2__1\n": _entry()}))
    ids, reasons = _read(path, tmp_path)
    assert ids == ["US1111111B2__1"] and "is not of the form" in reasons["US1111111B2__1\n"][0]


def test_official_ocr_values_are_checked_and_bad_entries_reported_by_id(tmp_path):
    def entry(ids, mask=None, boxes=None):
        value = {"input_ids": [ids], "bbox": [boxes if boxes is not None else [[0, 0, 0, 0]] * len(ids)]}
        return value if mask is None else {**value, "attention_mask": [mask]}

    entries = {
        "US1111111B2__1.png": entry([0, 7, 2], [1, 1, 1]),
        "US1111111B2__2.png": entry([0, 2**31, 2]),  # stopped build with a pyarrow overflow
        "US1111111B2__3.png": entry([0, -5, 2]),  # crashed training hours later
        "US1111111B2__4.png": entry([0, OCR_VOCAB_SIZE, 2]),  # past the OCR tokenizer's vocabulary
        "US1111111B2__5.png": entry([0, 7.0, 2]),
        "US1111111B2__6.png": entry([0, True, 2]),
        "US1111111B2__7.png": entry([0, 7, 2], [1, 1]),  # mask shorter than the ids
        "US1111111B2__8.png": entry([0, 7, 2], [1, 2, 1]),
        "US1111111B2__9.png": entry([0, 7], boxes=[[0, 0, 0, 0], [0.5, 0, 1, 1]]),  # float box
        "US1111111B2__10.png": entry([0, 7], boxes=[[0, 0, 0, 0]]),  # one box for two tokens
        "US1111111B2__11.png": {"input_ids": [[0, 2], [0, 2]], "bbox": [[[0] * 4] * 2] * 2},  # a batch of two
        "US1111111B2__12.png": entry([0, 2**64]),
        "US1111111B2__13.png": entry([0, 7, 2], [1, 1, 0]),
    }
    path = tmp_path / "ocr.json"
    path.write_text(json.dumps(entries))
    with ReportWriter(tmp_path / "rejected.jsonl", "build") as report:
        rows = {image_id: ids for image_id, ids, _ in iter_official_ocr(path, report)}
    assert rows == {"US1111111B2__1": [0, 7, 2], "US1111111B2__13": [0, 7]}
    reasons = {key: texts[0] for key, texts in _reasons(tmp_path / "rejected.jsonl").items()}
    assert len(reasons) == 11
    for k in (2, 3, 4, 5, 6, 12):
        assert (
            f"input_ids[1] = {entries[f'US1111111B2__{k}.png']['input_ids'][0][1]!r} is not a token id"
            in (reasons[f"US1111111B2__{k}"])
        )
    assert "attention_mask has 2 values but input_ids 3" in reasons["US1111111B2__7"]
    assert "attention_mask values must be the integers 0 or 1" in reasons["US1111111B2__8"]
    assert "bbox[1] = [0.5, 0, 1, 1] is not a box of four integers in 0-1000" in reasons["US1111111B2__9"]
    assert "bbox has 1 boxes but input_ids 2 tokens" in reasons["US1111111B2__10"]
    assert "holds a batch of 2" in reasons["US1111111B2__11"]
    assert all(reason.startswith(f"ocr.json entry '{key}.png': ") for key, reason in reasons.items())


def test_ocr_cache_boxes_must_be_integers(tmp_path):
    good = {"image_id": "US1111111B2__1", "words": ["FIG"], "boxes": [[1, 2, 3, 4]]}
    lines = [good, {**good, "image_id": "US1111111B2__2", "boxes": [[1.5, 2, 3, 4]]},
             {**good, "image_id": "US1111111B2__3", "boxes": [[True, 2, 3, 4]]}]  # fmt: skip
    (tmp_path / "ocr_cache.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with ReportWriter(tmp_path / "rejected.jsonl", "build") as report:
        assert [row[0] for row in iter_ocr_cache([tmp_path / "ocr_cache.jsonl"], report)] == ["US1111111B2__1"]
    assert set(_reasons(tmp_path / "rejected.jsonl")) == {"US1111111B2__2", "US1111111B2__3"}


def _entries(text: str, chunk: int) -> list:
    chunks = iter([text[i : i + chunk] for i in range(0, len(text), chunk)])
    return [item if isinstance(item, tuple) else ("bad", item.key, str(item)) for item in
            iter_object_entries(chunks, "f.json")]  # fmt: skip


def test_the_stream_reader_gives_json_loads_results_at_any_chunk_boundary():
    value = {
        "US1111111B2__1": {"a": 'quote " and backslash \\ and } ] { [ inside', "n": [1, -2.5e3, None, True, {}]},
        'k\u00e9y \\" 2': ["\u2603", 12345678901234567890, {"deep": [[[[["x"]]]]]}],
        "US1111111B2__3": 7,
        "US1111111B2__4": "",
    }
    text = json.dumps(value, indent=1)
    for chunk in (1, 2, 3, 7, 64, 1 << 20):
        assert _entries(text, chunk) == list(value.items()), chunk


def test_an_entry_over_the_size_cap_is_rejected_without_being_kept(monkeypatch):
    monkeypatch.setattr(jsonstream, "MAX_ENTRY_CHARS", 1000)
    monkeypatch.setattr(jsonstream, "CHUNK_BYTES", 100)
    text = json.dumps({"a": 1, "b": {"text": "x" * 5000, "list": list(range(1000))}, "c": 3})
    assert _entries(text, 100) == [
        ("a", 1), ("bad", "b", "the entry is over 1,000 characters: skipped unread"), ("c", 3)
    ]  # fmt: skip


def test_jsonl_appends_after_cutting_a_torn_last_line_and_readers_skip_bad_lines(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n{"c": ')  # a damaged line, then one a killed writer left
    assert [value for _, value in iter_jsonl(path) if not isinstance(value, ValueError)] == [{"a": 1}, {"b": 2}]
    assert [number for number, value in iter_jsonl(path) if isinstance(value, ValueError)] == [2, 4]
    with JsonlAppender(path) as appender:
        appender.write({"c": 3})
        appender.write_many([{"d": "é"}, {"e": 5}])
    assert path.read_text(encoding="utf-8") == '{"a": 1}\nnot json\n{"b": 2}\n{"c": 3}\n{"d": "é"}\n{"e": 5}\n'
    assert appender.count == 3 and list(complete_lines(path))[-1] == {"e": 5}
    assert list(iter_jsonl(tmp_path / "missing.jsonl")) == []


def test_the_previous_names_still_work_with_a_warning():
    import dataset_builder
    from dataset_builder import entries

    with pytest.warns(FutureWarning, match="iter_records is deprecated and will be removed; use iter_entries"):
        assert dataset_builder.iter_records is entries.iter_entries
    with pytest.warns(FutureWarning, match="use Entry"):
        assert entries.Record is entries.Entry
    with pytest.warns(FutureWarning, match="use InvalidEntryError"):
        assert entries.InvalidRecordError is entries.InvalidEntryError

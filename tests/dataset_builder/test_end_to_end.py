"""A synthetic PatentDesc-355k of 3,000 entries, 1% of them bad in each way the pipeline must survive, downloaded
from a real loopback HTTP server and built: every bad entry is in a report, every good one in the dataset."""

from __future__ import annotations

import json
import random

from PIL import Image

from dataset_builder.reports import read_report
from helpers.damaged import damaged_images, encoded
from helpers.http_servers import FigureServer, Reply
from patentlmm.cli.dataset import main

TOTAL = 3000
BAD_KINDS = (  # each is 1% of the entries
    "qoi body",  # a truncated QOI: Pillow raises IndexError
    "avif body",  # a damaged AVIF: RuntimeError
    "malformed url",  # http://[::1/...: urlsplit raises ValueError
    "trickling server",  # one byte every 0.1 s: only --timeout ends it
    "redirect loop",
    "redirect to file://",
    "http 404",
    "nan",  # NaN in an unused field (Python's json writes it)
    "huge number",  # 2^64 as the brief description
    "deep nesting",  # an unused field nested 5,000 deep
    "id with a newline",
    "damaged file",  # images/<id>.png damaged after the download (a PNG chunk header with flipped bits)
    "ocr.json value",  # a token id >= 2^31 in the official OCR
)
NOTED_KINDS = ("animated gif",)  # kept (first frame) and noted in the report


def _figure(index: int) -> bytes:
    """A small 1-bit figure of its own (so that every file differs)."""
    image = Image.new("1", (32, 24), 1)
    for bit in range(16):
        if index >> bit & 1:
            image.putpixel((2 * bit, 12), 0)
    return encoded(image, "PNG")


def _entry(url: str, brief: object = "FIG. 1 is a view.") -> dict:
    return {"image_url": url, "brief_description": brief, "detailed_description": "The widget 10 has a part 12."}


def test_three_thousand_entries_with_every_kind_of_bad_one(tmp_path, capsys):
    kinds = {}
    per_kind = TOTAL // 100
    ids = [f"US{7000000 + index}B2__1" for index in range(TOTAL)]
    shuffled = random.Random(0).sample(ids, (len(BAD_KINDS) + len(NOTED_KINDS)) * per_kind)
    for position, image_id in enumerate(shuffled):
        kinds[image_id] = (BAD_KINDS + NOTED_KINDS)[position // per_kind]
    damaged = damaged_images()
    frames = [Image.new("L", (16, 16), value) for value in (0, 255)]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    root = tmp_path / "DATASET"
    root.mkdir()

    with FigureServer() as server:
        loop_a, loop_b = server.url("/loop-a"), server.url("/loop-b")
        server.route("/loop-a", Reply(302, headers={"Location": loop_b}))
        server.route("/loop-b", Reply(302, headers={"Location": loop_a}))
        parts = []
        official = {}
        for index, image_id in enumerate(ids):
            kind = kinds.get(image_id)
            path = f"/{image_id}.png"
            url = server.route(path, Reply(200, _figure(index)))
            entry = _entry(url)
            if kind == "qoi body":
                server.route(path, Reply(200, damaged["IndexError"]))
            elif kind == "avif body":
                server.route(path, Reply(200, damaged["RuntimeError"]))
            elif kind == "malformed url":
                entry["image_url"] = "http://[::1/fig.png"
            elif kind == "trickling server":
                server.route(path, Reply(200, _figure(index), trickle=0.1))
            elif kind == "redirect loop":
                entry["image_url"] = loop_a
            elif kind == "redirect to file://":
                server.route(path, Reply(302, headers={"Location": "file:///etc/passwd"}))
            elif kind == "http 404":
                server.route(path, Reply(404))
            elif kind == "nan":
                entry["score"] = float("nan")
            elif kind == "huge number":
                entry["brief_description"] = 2**64
            elif kind == "animated gif":
                server.route(path, Reply(200, gif))
            key = f"{image_id}\n" if kind == "id with a newline" else image_id
            text = json.dumps(entry)
            if kind == "deep nesting":
                text = text[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}"
            parts.append(f"{json.dumps(key)}: {text}")
            tokens = [0, 2**31, 2] if kind == "ocr.json value" else [0, 7, 2]
            official[f"{image_id}.png"] = {"input_ids": [tokens], "attention_mask": [[1] * 3], "bbox": [[[0] * 4] * 3]}
        # The whole file with a UTF-8 BOM, the split lists too (the first id must not be lost).
        (root / "PatentDesc-355k.json").write_text("{" + ",\n".join(parts) + "}", encoding="utf-8-sig")
        (root / "data_splits").mkdir()
        (root / "data_splits" / "train.txt").write_text("".join(f"{i}\n" for i in ids[:-100]), encoding="utf-8-sig")
        (root / "data_splits" / "test.txt").write_text("".join(f"{i}\n" for i in ids[-100:]), encoding="utf-8-sig")
        (root / "ocr.json").write_text(json.dumps(official))
        download = ["--workers", "16", "--per-host-rate", "0", "--retries", "0", "--timeout", "1"]
        assert main(["download", "--root", str(root), *download]) == 0
        # A rerun fetches nothing complete and no permanent failure again: only the transient ones (timeouts).
        before = dict(server.counts)
        assert main(["download", "--root", str(root), *download]) == 0
        again = {path for path, count in server.counts.items() if count != before.get(path, 0)}
        assert again == {f"/{i}.png" for i, kind in kinds.items() if kind == "trickling server"}
    for image_id, kind in kinds.items():  # bit rot after the download
        if kind == "damaged file":
            (root / "images" / f"{image_id}.png").write_bytes(damaged["SyntaxError"])
    (root / "ocr").mkdir()
    cache = [{"image_id": i, "words": ["FIG", "1"], "boxes": [[10, 10, 90, 30], [100, 10, 120, 30]]} for i in ids]
    (root / "ocr" / "ocr_cache.jsonl").write_text("".join(json.dumps(line) + "\n" for line in cache))
    assert main(["build", "--root", str(root), "--workers", "2"]) == 0
    capsys.readouterr()

    reports = read_report(root / "reports" / "download_failures.jsonl") + read_report(
        root / "reports" / "rejected.jsonl"
    )
    reported = {}
    for line in reports:
        reported.setdefault(line["image_id"].rstrip("\n"), []).append(line["reason"])
    bad = {image_id for image_id, kind in kinds.items() if kind in BAD_KINDS}
    noted = {image_id for image_id, kind in kinds.items() if kind in NOTED_KINDS}
    assert set(reported) == bad | noted  # every bad entry, and only those, is in a report
    expected_reason = {
        "qoi body": "damaged image: IndexError",
        "avif body": "damaged image: RuntimeError",
        "malformed url": "malformed URL",
        "trickling server": "timed out after 1 s (the whole request)",
        "redirect loop": "redirect refused: a redirect loop",
        "redirect to file://": "redirect refused: not an http(s) URL: 'file:///etc/passwd'",
        "http 404": "HTTP 404",
        "nan": "NaN is not a JSON number",
        "huge number": "'brief_description' is a number",
        "deep nesting": "nested too deeply",
        "id with a newline": "is not of the form <publication>__<figure>",
        "damaged file": "SyntaxError: broken PNG file",
        "ocr.json value": "input_ids[1] = 2147483648 is not a token id",
        "animated gif": "GIF image with 2 frames: only the first frame is kept",
    }
    for image_id, kind in kinds.items():
        assert any(expected_reason[kind] in reason for reason in reported[image_id]), (kind, reported[image_id])

    from datasets import load_dataset

    built = load_dataset(str(root / "patentdesc-355k"), "brief", cache_dir=str(tmp_path / "cache"))
    rows = {image_id for split in built.values() for image_id in split["image_id"]}
    # Every good entry is built; so is an "ocr.json value" one, from its Tesseract OCR (its token ids are null).
    good = set(ids) - bad | {image_id for image_id, kind in kinds.items() if kind == "ocr.json value"}
    assert rows == good and len(rows) == TOTAL - (len(BAD_KINDS) - 1) * per_kind

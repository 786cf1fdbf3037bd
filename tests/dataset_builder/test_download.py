"""`dataset_builder.download` against a real HTTP server on 127.0.0.1 serving the bundled real figures."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from dataset_builder.download import download_images
from dataset_builder.options import DownloadOptions
from dataset_builder.reports import read_report
from dataset_builder.sharding import shard_of
from helpers import REPO
from helpers.damaged import damaged_images, encoded
from helpers.http_servers import FigureServer, Reply
from patentlmm.cli.dataset import main
from patentlmm_common.files import AlreadyRunningError

FIGURES = sorted((REPO / "patentlmm" / "assets" / "figures").glob("*.png"))
FAST = {"per_host_rate": 0, "timeout": 1.0, "backoff": 0.01, "retries": 3}  # retries without real waiting


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int = 40_000) -> bytes:
    """A tiny PNG whose header claims side x side 1-bit pixels (1.6 Gpx): a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )


def _download_bodies(tmp_path: Path, server: FigureServer, routes: dict, more: list = ()) -> tuple:
    """Serves each `image_id: (path, body)` of `routes` (HTTP 200) and downloads them and the `more` items with the
    fast options; returns the summary and the report's path."""
    items = [(image_id, server.route(path, Reply(200, body))) for image_id, (path, body) in routes.items()]
    report = tmp_path / "failures.jsonl"
    return download_images([*items, *more], tmp_path / "images", report, DownloadOptions(**FAST)), report


def _ids(n: int) -> list[str]:
    return [f"US20250204297A1__{i}" for i in range(1, n + 1)]


def _serve_figures(server: FigureServer, ids: list[str]) -> list[tuple[str, str]]:
    """Routes `/<id>.png` to the real figures (cycled) and returns the `(id, url)` items."""
    return [
        (i, server.route(f"/{i}.png", Reply(200, FIGURES[k % len(FIGURES)].read_bytes()))) for k, i in enumerate(ids)
    ]


def _assert_valid_pngs(images: Path, expected: set[str]) -> None:
    assert {p.name for p in images.iterdir()} == {f"{i}.png" for i in expected}  # no .part files either
    for path in images.iterdir():
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.load()


def test_downloads_real_figures_then_skips_them(tmp_path):
    with FigureServer() as server:
        items = _serve_figures(server, _ids(5))
        first = download_images(
            items, tmp_path / "images", tmp_path / "failures.jsonl", DownloadOptions(workers=4, **FAST)
        )
        assert (first.downloaded, first.skipped, first.failed, first.requests) == (5, 0, 0, 5)
        for k, (image_id, _) in enumerate(items):  # PNG bodies are kept byte for byte
            assert (tmp_path / "images" / f"{image_id}.png").read_bytes() == FIGURES[k].read_bytes()
        second = download_images(
            items, tmp_path / "images", tmp_path / "failures.jsonl", DownloadOptions(workers=4, **FAST)
        )
        assert (second.downloaded, second.skipped, second.requests) == (0, 5, 0)
        assert sum(server.counts.values()) == 5
    assert not (tmp_path / "failures.jsonl").exists()


def test_transient_failures_are_retried(tmp_path):
    png = FIGURES[0].read_bytes()
    with FigureServer() as server:
        items = [
            ("US20250204297A1__1", server.route("/500", Reply(500), Reply(503), Reply(200, png))),
            ("US20250204297A1__2", server.route("/429", Reply(429, headers={"Retry-After": "1"}), Reply(200, png))),
            ("US20250204297A1__3", server.route("/short", Reply(200, png, send_bytes=len(png) // 2), Reply(200, png))),
            ("US20250204297A1__4", server.route("/slow", Reply(200, png, delay=3.0), Reply(200, png))),
        ]
        summary = download_images(
            items, tmp_path / "images", tmp_path / "failures.jsonl", DownloadOptions(workers=4, **FAST)
        )
        assert (summary.downloaded, summary.failed) == (4, 0)
        assert server.counts == {"/500": 3, "/429": 2, "/short": 2, "/slow": 2}
        wait = server.times["/429"][1] - server.times["/429"][0]
        assert wait >= 0.95, f"Retry-After: 1 not honoured (retried after {wait:.2f} s)"
    _assert_valid_pngs(tmp_path / "images", {image_id for image_id, _ in items})
    for image_id, _ in items:  # the truncated body never reached images/
        assert (tmp_path / "images" / f"{image_id}.png").read_bytes() == png


def test_permanent_failures_are_recorded_once_and_not_retried(tmp_path):
    png = FIGURES[0].read_bytes()
    html = b"<!doctype html><html><body>Not Found</body></html>"
    with FigureServer() as server:
        items = [
            ("US20250204297A1__1", server.url("/gone")),  # no route: 404
            ("US20250204297A1__2", server.route("/html", Reply(200, html, headers={"Content-Type": "text/html"}))),
            ("US20250204297A1__3", server.route("/bomb", Reply(200, _bomb_png()))),
            ("US20250204297A1__4", server.route("/410", Reply(410))),
            ("US20250204297A1__5", server.route("/always500", Reply(500))),
            ("US20250204297A1__6", server.route("/alwaysshort", Reply(200, png, send_bytes=1000))),
            ("US20250204297A1__7", "file:///etc/passwd"),
            ("../../etc/passwd", server.url("/gone")),
            ("US20250204297A1__8", server.route("/ok", Reply(200, png))),
        ]
        report = tmp_path / "reports" / "download_failures.jsonl"
        summary = download_images(items, tmp_path / "images", report, DownloadOptions(workers=4, **FAST))
        assert (summary.downloaded, summary.failed) == (1, 8)
        lines = {line["image_id"]: line for line in read_report(report)}
        assert len(read_report(report)) == 8
        assert all(line["stage"] == "download" for line in lines.values())
        assert "HTTP 404" in lines["US20250204297A1__1"]["reason"]
        assert "not an image" in lines["US20250204297A1__2"]["reason"]
        assert "too large" in lines["US20250204297A1__3"]["reason"]
        assert "HTTP 410" in lines["US20250204297A1__4"]["reason"]
        assert lines["US20250204297A1__5"] | {"permanent": False, "attempts": 4} == lines["US20250204297A1__5"]
        assert "truncated body" in lines["US20250204297A1__6"]["reason"]
        assert "not an http(s) URL" in lines["US20250204297A1__7"]["reason"]
        assert "path separator" in lines["../../etc/passwd"]["reason"]
        counts = dict(server.counts)
        assert counts == {"/gone": 1, "/html": 1, "/bomb": 1, "/410": 1, "/always500": 4, "/alwaysshort": 4, "/ok": 1}

        # A rerun retries only the transient failures; the permanent ones are not requested (or reported) again.
        again = download_images(items, tmp_path / "images", report, DownloadOptions(workers=4, **FAST))
        assert (again.skipped, again.previously_failed, again.failed) == (1, 6, 2)
        assert {path: server.counts[path] - counts[path] for path in counts} == {
            "/gone": 0, "/html": 0, "/bomb": 0, "/410": 0, "/always500": 4, "/alwaysshort": 4, "/ok": 0
        }  # fmt: skip
    _assert_valid_pngs(tmp_path / "images", {"US20250204297A1__8"})


def test_damaged_png_bodies_are_rejected_without_a_pixel_decode(tmp_path):
    png = FIGURES[0].read_bytes()
    idat = png.index(b"IDAT") + 8 + 100  # a byte inside the first IDAT chunk's data
    flipped = png[:idat] + bytes([png[idat] ^ 0xFF]) + png[idat + 1 :]  # its CRC no longer matches
    cut = png[: len(png) // 2]  # a complete response (right Content-Length) of half a file: no IEND
    with FigureServer() as server:
        routes = {"US20250204297A1__1": ("/flipped", flipped), "US20250204297A1__2": ("/cut", cut)}
        summary, report = _download_bodies(tmp_path, server, routes)
        assert (summary.downloaded, summary.failed) == (0, 2)
        assert dict(server.counts) == {"/flipped": 1, "/cut": 1}  # permanent: not retried
    reasons = {line["image_id"]: line["reason"] for line in read_report(report)}
    assert reasons["US20250204297A1__1"].startswith("damaged image: SyntaxError: broken PNG file")
    assert reasons["US20250204297A1__2"] == "damaged image: OSError: Truncated File Read"
    assert list((tmp_path / "images").iterdir()) == []


def test_non_png_images_are_saved_as_lossless_png(tmp_path):
    with Image.open(FIGURES[0]) as figure:
        figure.load()
    tiff = io.BytesIO()
    figure.save(tiff, format="TIFF", compression="group4")  # how USPTO ships drawing sheets (1-bit)
    with FigureServer() as server:
        items = [("US20250204297A1__1", server.route("/fig.tif", Reply(200, tiff.getvalue())))]
        summary = download_images(items, tmp_path / "images", tmp_path / "failures.jsonl", DownloadOptions(**FAST))
    assert summary.downloaded == 1
    with Image.open(tmp_path / "images" / "US20250204297A1__1.png") as saved:
        assert (saved.format, saved.mode, saved.size) == ("PNG", "1", figure.size)
        assert saved.tobytes() == figure.tobytes()


def test_per_host_rate_limit(tmp_path):
    with FigureServer() as server:
        items = _serve_figures(server, _ids(6))
        download_images(
            items,
            tmp_path / "images",
            tmp_path / "f.jsonl",
            DownloadOptions(workers=6, **{**FAST, "per_host_rate": 10}),
        )
        starts = sorted(t for times in server.times.values() for t in times)
    assert starts[-1] - starts[0] >= 0.4, "6 requests at 10/s must span 0.5 s (less some scheduling noise)"


def test_shards_split_the_ids_exactly_once(tmp_path):
    ids = _ids(12)
    with FigureServer() as server:
        items = _serve_figures(server, ids)
        per_shard = []
        for index in range(3):
            summary = download_images(
                items,
                tmp_path / "images",
                tmp_path / "f.jsonl",
                DownloadOptions(num_shards=3, shard_index=index, **FAST),
            )
            per_shard.append(summary.downloaded)
        assert set(server.counts.values()) == {1}
    assert sum(per_shard) == 12 and all(per_shard)
    assert per_shard == [sum(shard_of(i, 3) == k for i in ids) for k in range(3)]
    _assert_valid_pngs(tmp_path / "images", set(ids))


def test_run_reads_the_official_json(tmp_path):
    with FigureServer() as server:
        items = _serve_figures(server, _ids(3))
        entries = {i: {"image_url": url, "brief_description": "b", "detailed_description": "d"} for i, url in items}
        entries["US20250204297A1__9"] = {"image_url": server.url("/x.png")}  # missing fields: rejected, reported
        (tmp_path / "PatentDesc-355k.json").write_text(json.dumps(entries))
        assert main(["download", "--root", str(tmp_path), "--workers", "2", "--per-host-rate", "0"]) == 0
        assert "/x.png" not in server.counts
    _assert_valid_pngs(tmp_path / "images", set(_ids(3)))
    (rejected,) = read_report(tmp_path / "reports" / "download_failures.jsonl")
    assert rejected["image_id"] == "US20250204297A1__9" and "missing field" in rejected["reason"]


_CHILD = """
import json, sys
from pathlib import Path
from dataset_builder.download import download_images
from dataset_builder.options import DownloadOptions
items = [tuple(item) for item in json.loads(sys.argv[1])]
download_images(items, Path(sys.argv[2]), Path(sys.argv[3]), DownloadOptions(workers=2, per_host_rate=0, timeout=10))
"""


def _child_download(items: list, images: Path, report: Path, started) -> subprocess.Popen:
    """`download_images(items, images, report)` in a real child process, returned once `started()` is true."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(items), str(images), str(report)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90  # the child first imports torch and transformers
    while not started():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise AssertionError("the child ended or stalled")
        time.sleep(0.05)
    return child


def test_resumes_after_sigkill(tmp_path):
    """SIGKILL a download mid-run, rerun: all fetched, no complete file fetched twice, nothing partial left."""
    ids, images, report = _ids(16), tmp_path / "images", tmp_path / "failures.jsonl"
    with FigureServer(delay=0.25) as server:
        items = _serve_figures(server, ids)
        child = _child_download(items, images, report, started=lambda: len(list(images.glob("*.png"))) >= 4)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        done_before = {p.name[: -len(".png")] for p in images.glob("*.png")}
        assert 4 <= len(done_before) < 16
        for path in images.glob("*.png"):  # every file left by the killed run is complete
            with Image.open(path) as image:
                image.load()
        stale = images / f".{ids[-1]}.png.tmp-0123456789ab"  # as if killed while writing
        stale.write_bytes(FIGURES[0].read_bytes()[:100])

        summary = download_images(items, images, report, DownloadOptions(workers=2, per_host_rate=0, timeout=10))
        assert summary.skipped == len(done_before) and summary.downloaded == 16 - len(done_before)
        assert all(server.counts[f"/{i}.png"] == 1 for i in done_before), "a complete file was fetched twice"
        refetched = [i for i in ids if server.counts[f"/{i}.png"] > 1]  # requests in flight at the kill
        assert len(refetched) <= 2 and max(server.counts.values()) <= 2
    _assert_valid_pngs(images, set(ids))
    assert not report.exists()


def test_bad_shard_arguments():
    with pytest.raises(ValueError, match="shard_index"):
        download_images([], Path("unused"), Path("unused.jsonl"), DownloadOptions(num_shards=2, shard_index=2))


def test_any_decoder_error_on_a_body_is_reported_with_its_id_and_the_run_goes_on(tmp_path):
    damaged = damaged_images()  # PNG with a flipped chunk header, truncated QOI, damaged AVIF
    with FigureServer() as server:
        items = [(f"US20250204297A1__{k}", server.route(f"/{name}", Reply(200, body))) for k, (name, body) in
                 enumerate(damaged.items(), start=1)]  # fmt: skip
        items += _serve_figures(server, _ids(6)[3:])
        report = tmp_path / "failures.jsonl"
        summary = download_images(items, tmp_path / "images", report, DownloadOptions(workers=3, **FAST))
    assert (summary.downloaded, summary.failed) == (3, 3)
    reasons = {line["image_id"]: line for line in read_report(report)}
    for k, name in enumerate(damaged, start=1):
        line = reasons[f"US20250204297A1__{k}"]
        assert line["reason"].startswith(f"damaged image: {name}: ") and line["permanent"] is True, line
    _assert_valid_pngs(tmp_path / "images", set(_ids(6)[3:]))


def test_malformed_urls_are_reported_before_any_request(tmp_path):
    with FigureServer() as server:
        good = _serve_figures(server, ["US20250204297A1__9"])
        port = good[0][1].split(":")[2].split("/")[0]
        bad = {
            "US20250204297A1__1": "http://[::1/fig.png",  # urlsplit: Invalid IPv6 URL
            "US20250204297A1__2": "http://127.0.0.1:99999/fig.png",  # port out of range
            "US20250204297A1__3": f"http://127.0.0.1:{port}/a fig.png",  # a space
            "US20250204297A1__4": "http:///fig.png",  # no host
            "US20250204297A1__5": f"http://127.0.0.1:{port}/fig\u00e9.png",  # not ASCII
            "US20250204297A1__6": None,
        }
        report = tmp_path / "failures.jsonl"
        summary = download_images([*bad.items(), *good], tmp_path / "images", report, DownloadOptions(**FAST))
        assert (summary.downloaded, summary.failed) == (1, len(bad))
        assert sum(server.counts.values()) == 1
    reasons = {line["image_id"]: line["reason"] for line in read_report(report)}
    assert "malformed URL 'http://[::1/fig.png': Invalid IPv6 URL" in reasons["US20250204297A1__1"]
    assert "malformed URL" in reasons["US20250204297A1__2"] and "out of range" in reasons["US20250204297A1__2"]
    assert "spaces, control or non-ASCII" in reasons["US20250204297A1__3"]
    assert "no host" in reasons["US20250204297A1__4"]
    assert "spaces, control or non-ASCII" in reasons["US20250204297A1__5"]
    assert "the URL is a null, not a string" in reasons["US20250204297A1__6"]


def test_redirect_loops_and_redirects_to_other_schemes_are_reported_as_such(tmp_path):
    png = FIGURES[0].read_bytes()
    with FigureServer() as server:
        loop_a, loop_b = server.url("/loop-a"), server.url("/loop-b")
        server.route("/loop-a", Reply(302, headers={"Location": loop_b}))
        server.route("/loop-b", Reply(302, headers={"Location": loop_a}))
        items = [
            ("US20250204297A1__1", loop_a),
            ("US20250204297A1__2", server.route("/to-file", Reply(302, headers={"Location": "file:///etc/passwd"}))),
            ("US20250204297A1__3", server.route("/to-ftp", Reply(301, headers={"Location": "ftp://127.0.0.1/x.png"}))),
            ("US20250204297A1__4", server.route("/to-bad", Reply(307, headers={"Location": "http://[::1/x.png"}))),
            ("US20250204297A1__5", server.route("/moved", Reply(302, headers={"Location": "/fig.png"}))),
        ]
        server.route("/fig.png", Reply(200, png))
        report = tmp_path / "failures.jsonl"
        summary = download_images(items, tmp_path / "images", report, DownloadOptions(**FAST))
        assert (summary.downloaded, summary.failed) == (1, 4)
        assert server.counts["/loop-a"] + server.counts["/loop-b"] <= 11  # refused, not retried
    reasons = {line["image_id"]: line for line in read_report(report)}
    assert all(line["permanent"] for line in reasons.values())
    assert "HTTP 302 redirect refused: a redirect loop" in reasons["US20250204297A1__1"]["reason"]
    assert reasons["US20250204297A1__2"]["reason"] == (
        "HTTP 302 redirect refused: not an http(s) URL: 'file:///etc/passwd'"
    )
    assert "HTTP 301 redirect refused: not an http(s) URL: 'ftp://" in reasons["US20250204297A1__3"]["reason"]
    assert "HTTP 307 redirect refused: malformed URL" in reasons["US20250204297A1__4"]["reason"]
    assert (tmp_path / "images" / "US20250204297A1__5.png").read_bytes() == png


@pytest.mark.parametrize("stalled", ["body", "headers"])
def test_timeout_bounds_the_whole_request_of_a_trickling_server(tmp_path, stalled):
    """One byte every 50 ms of a 3 KB body (150 s): `timeout=1` gives up after about 20 bytes, not 150 s."""
    body = FIGURES[0].read_bytes()[:3000]
    reply = Reply(200, body, trickle=0.05) if stalled == "body" else Reply(200, body, trickle=0.05, send_bytes=0)
    with FigureServer() as server:
        items = [("US20250204297A1__1", server.route("/slow", reply))]
        report = tmp_path / "failures.jsonl"
        summary = download_images(items, tmp_path / "images", report, DownloadOptions(**{**FAST, "retries": 0}))
        assert summary.failed == 1
        (line,) = read_report(report)
        assert line["reason"] == "timed out after 1 s (the whole request)" and line["permanent"] is False
        assert server.sent["/slow"] < 200  # the server was cut off ~1 s in, not after its 3,100 bytes


def test_animated_gif_and_multipage_tiff_keep_the_first_frame_and_say_so(tmp_path):
    frames = [Image.new("L", (32, 24), value) for value in (0, 128, 255)]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    tiff = encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with FigureServer() as server:
        routes = {"US20250204297A1__1": ("/anim.gif", gif), "US20250204297A1__2": ("/pages.tif", tiff)}
        summary, report = _download_bodies(tmp_path, server, routes, _serve_figures(server, ["US20250204297A1__3"]))
    assert (summary.downloaded, summary.failed) == (3, 0)
    notes = {line["image_id"]: line for line in read_report(report)}
    assert notes["US20250204297A1__1"]["reason"] == "GIF image with 3 frames: only the first frame is kept"
    assert notes["US20250204297A1__2"]["reason"] == "TIFF image with 3 frames: only the first frame is kept"
    assert {line["action"] for line in notes.values()} == {"first frame kept"} and len(notes) == 2
    for k in (1, 2):
        with Image.open(tmp_path / "images" / f"US20250204297A1__{k}.png") as saved:
            assert getattr(saved, "n_frames", 1) == 1 and saved.convert("L").getpixel((0, 0)) == 0


def test_files_are_written_with_the_usual_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with FigureServer() as server:
            download_images(
                _serve_figures(server, _ids(2)), tmp_path / "images", tmp_path / "f.jsonl", DownloadOptions(**FAST)
            )
    finally:
        os.umask(old)
    assert {oct(path.stat().st_mode & 0o777) for path in (tmp_path / "images").glob("*.png")} == {"0o644"}


def test_a_second_download_of_the_same_shard_stops_at_once_with_a_clear_message(tmp_path):
    """A real second process holds the shard's lock: this one refuses at once and fetches nothing."""
    ids, images, report = _ids(6), tmp_path / "images", tmp_path / "failures.jsonl"
    with FigureServer(delay=0.5) as server:
        items = _serve_figures(server, ids)
        child = _child_download(items, images, report, started=lambda: bool(server.counts))
        try:
            with pytest.raises(AlreadyRunningError, match=rf"into {images} is already running \(pid {child.pid} "):
                download_images(items, images, report, DownloadOptions(**FAST))
            assert child.wait(timeout=60) == 0
        finally:
            child.kill()
            child.wait()
        assert set(server.counts.values()) == {1}  # the refused run sent no request
    _assert_valid_pngs(images, set(ids))
    assert not report.exists()


def test_a_truncated_json_downloads_the_entries_before_the_cut_and_build_refuses_it(tmp_path, capsys):
    with FigureServer() as server:
        items = _serve_figures(server, _ids(4))
        entries = {i: {"image_url": url, "brief_description": "b", "detailed_description": "d"} for i, url in items}
        text = json.dumps(entries)
        (tmp_path / "PatentDesc-355k.json").write_text(text[: text.rindex('"US20250204297A1__4"') + 30])  # cut in #4
        status = main(["download", "--root", str(tmp_path), "--per-host-rate", "0"])
    assert status == 1
    message = "PatentDesc-355k.json is not valid JSON after 3 entries: expected the end of the value of"
    assert message in capsys.readouterr().err
    _assert_valid_pngs(tmp_path / "images", set(_ids(3)))
    assert main(["build", "--root", str(tmp_path), "--allow-missing-ocr"]) == 2  # the same words, and no dataset
    assert message in capsys.readouterr().err and not (tmp_path / "patentdesc-355k").exists()


def test_a_top_level_list_is_refused_by_download_and_build_in_one_line(tmp_path, capsys):
    (tmp_path / "PatentDesc-355k.json").write_text(json.dumps([{"image_url": "http://127.0.0.1:9/x.png"}]))
    for command in ("download", "build"):
        assert main([command, "--root", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{command}: ") and "is a JSON array: it must be one JSON object" in err
        assert err.count("\n") == 1  # one line, no traceback

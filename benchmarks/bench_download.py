"""Throughput of `dataset_builder.download` against sequential GETs, on a loopback server adding latency.

Run from the repository root:

    python benchmarks/bench_download.py                          # 160 figures, 50 ms per request, 16 workers
    python benchmarks/bench_download.py --count 320 --latency 0.1 --workers 32

A local HTTP server (`tests/helpers/http_servers.FigureServer`, 127.0.0.1) answers every request after `--latency`
seconds with one of the real figures (the bundled `patentlmm/assets/figures/`, cycled).
It runs in its own process, as a real server would: in the benchmark's process its threads would compete with the
downloader's for the GIL, and the benchmark would measure that contention.
Rows, each into a fresh folder, images/s and the ratio against the first row:

1. `sequential GETs`: `urllib.request.urlopen(url).read()` then a file write, one figure after the other (no
   check of the body): the naive script a user would write.
2. `download_images, no rate limit`: `--workers` threads, `per_host_rate=0`; every body checked (pixel cap from
   the header, every PNG chunk's CRC through IEND), written via a temp file, fsynced and renamed.
3. `download_images, default rate limit`: the same with the default `per_host_rate` (all requests go to one
   host, so the limit caps the rate).

One run each, nothing asserted. The last line prints the CPU the check of each body costs, and what a full pixel
decode would cost instead. On a busy machine the downloader competes with other jobs: see the `load avg` line.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from dataset_builder.download import checked_png, download_images  # noqa: E402
from dataset_builder.options import DownloadOptions  # noqa: E402
from helpers.http_servers import FigureServer, Reply  # noqa: E402
from patentlmm.assets import FIGURES  # noqa: E402
from processing.images import decode_image  # noqa: E402


def _figures() -> list[bytes]:
    return [path.read_bytes() for path in sorted(FIGURES.glob("*.png"))]


def _sequential(items: list[tuple[str, str]], images: Path) -> None:
    images.mkdir(parents=True)
    for image_id, url in items:
        with urllib.request.urlopen(url, timeout=60) as response:
            (images / f"{image_id}.png").write_bytes(response.read())


def _serve(figures: list[bytes], count: int, latency: float, connection) -> None:
    """The server process: routes `/<k>.png` to the figures (cycled), sends the URLs back, serves until told."""
    with FigureServer(delay=latency) as server:
        connection.send([server.route(f"/{k}.png", Reply(200, figures[k % len(figures)])) for k in range(count)])
        connection.recv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=160, help="figures to download per row")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server waits before each reply")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    figures = _figures()
    rows: list[tuple[str, float]] = []
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(figures, args.count, args.latency, theirs), daemon=True)
    server.start()
    urls = ours.recv()
    items = [(f"US{1000000 + k}B2__{k % 20 + 1}", url) for k, url in enumerate(urls)]
    default_rate = DownloadOptions(workers=args.workers)
    unlimited = DownloadOptions(workers=args.workers, per_host_rate=0)
    with tempfile.TemporaryDirectory() as scratch:
        runs = {
            "sequential GETs": lambda folder: _sequential(items, folder),
            f"download_images, {args.workers} workers, no rate limit": lambda folder: download_images(
                items, folder, Path(scratch) / "r1.jsonl", unlimited
            ),
            f"download_images, {args.workers} workers, default {default_rate.per_host_rate:g} req/s per host": (
                lambda folder: download_images(items, folder, Path(scratch) / "r2.jsonl", default_rate)
            ),
        }
        for index, (name, function) in enumerate(runs.items()):
            folder = Path(scratch) / f"images{index}"
            start = time.perf_counter()
            function(folder)
            seconds = time.perf_counter() - start
            assert len(list(folder.glob("*.png"))) == args.count, f"{name}: not every figure was downloaded"
            rows.append((name, args.count / seconds))
    ours.send("stop")
    server.join()

    # The CPU each body's check costs, and a full decode's (what the downloader did before), per figure.
    costs = {}
    checks = {"check": lambda body: checked_png(body, None), "decode": lambda body: decode_image(body).close()}
    for name, check in checks.items():
        start = time.process_time()
        for body in figures:
            check(body)
        costs[name] = (time.process_time() - start) / len(figures) * 1e3
    load = os.getloadavg()
    print(
        f"\n{args.count} real figures ({sum(map(len, figures)) / len(figures) / 1e3:.0f} KB on average), "
        f"{args.latency * 1e3:.0f} ms added per request, {os.cpu_count()} cores, "
        f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'row':<60} {'images/s':>9} {'ratio':>7}")
    for name, rate in rows:
        print(f"{name:<60} {rate:9.1f} {rate / rows[0][1]:6.1f}x")
    print(
        f"CPU per figure: the downloader's check {costs['check']:.2f} ms; a full pixel decode would take "
        f"{costs['decode']:.2f} ms"
    )


if __name__ == "__main__":
    main()

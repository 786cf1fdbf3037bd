"""`build`: PatentDesc-355k files -> a script-free `datasets` folder `patentdesc-355k/` (Parquet + dataset card).

    python -m dataset_builder build --root DATASET
    python -m dataset_builder build --root DATASET --ratios 0.8,0.1,0.1 --seed 1 --workers 8   # no split lists

Reads, from the root (laid out like the official `DATASET/`): `PatentDesc-355k.json`, the split lists
(`data_splits/` or `splits/`; without them a deterministic split by patent, see `splits.py`), `images/<id>.png`,
the OCR cache of the `ocr` step (`ocr/ocr_cache*.jsonl`) and, when present, the official `ocr.json`. Writes:

    patentdesc-355k/
        README.md                                   dataset card: configs, features, splits, license, citation
        brief/{train,validation,test}-00000-of-0000N.parquet
        detailed/{train,validation,test}-00000-of-0000N.parquet
    reports/rejected.jsonl                          one line per figure left out or changed, with the reason

(a split without rows, e.g. of a small test root, gets no files and no entry in the card), so that
`load_dataset("patentdesc-355k", "brief")` (from the parent folder), `load_dataset("/abs/path/to/
patentdesc-355k", "detailed")` and `streaming=True` work, and the folder can be pushed to the Hub as it is.

Each figure becomes one row per config whose description (stripped) is not empty, as in the original dataset class;
a figure with both empty is left out. Images are checked with `processing.images.load_image` (pixel cap against
decompression bombs, full decode against truncation). PNGs in mode 1, L or RGB are embedded byte for byte (patent
drawings are mostly 1-bit: re-encoding as RGB would triple them for nothing); anything else (palette, alpha, 16-bit,
CMYK, a JPEG or TIFF named `.png`, an animated or multi-page image: its first frame) is converted to 8-bit RGB as
the processor would, re-encoded as PNG, and reported with `"action": "converted"`. A damaged file is reported with
its name and whatever its decoder raised, and the run goes on. A figure needs an OCR result (Tesseract words from
the cache or token ids from `ocr.json`) unless `--allow-missing-ocr`, which writes null OCR columns instead.

Memory stays flat at any size: the JSON is streamed, per-id bookkeeping lives in SQLite files, rows are written in
row groups of ~100 figures (8 MiB) and shards are closed at `--max-shard-mb`. Images are checked by `--workers`
processes; one killed by a signal (the out-of-memory killer, say) fails no figure (`pool.ResilientPool`). The whole
folder is written under a temporary name and renamed into place at the end, so a crash never leaves a half-written
dataset (a rerun starts again, deleting what the killed run left; the `download` and `ocr` steps are the resumable
ones). Two builds of one output at once: the second stops with a clear message.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from processing.constants import DEFAULT_MAX_IMAGE_PIXELS
from processing.images import load_image

from .cli import at_least
from .features import CONFIGS, patentdesc_features
from .files import atomic_directory, remove_stale_temporaries, run_lock
from .ocr_folders import engine_of_folder, find_ocr_folder
from .pool import ResilientPool, WorkerDiedError
from .records import DiskMap, Record, find_split_dir, iter_ocr_cache, iter_official_ocr, iter_records
from .reports import ReportWriter, frames_note
from .splits import DEFAULT_RATIOS, SPLITS, SplitAssigner, parse_ratios

__all__ = [
    "BuildOptions",
    "BuildSummary",
    "DatasetLayout",
    "PreparedImage",
    "add_arguments",
    "build_patentdesc_dataset",
    "iter_examples",
    "prepare_image",
    "run",
    "write_dataset_card",
]

DATASET_NAME = "patentdesc-355k"
# A row group closes at 8 MiB or 1,000 rows: ~100 real figures (the `datasets` default for image data, which keeps
# streaming and the Hub viewer light), but not thousands of tiny groups, whose metadata would grow without bound.
ROW_GROUP_BYTES = 8 * 1024**2
ROW_GROUP_MAX_ROWS = 1000
STATISTICS_COLUMNS = ("image_id", "patent_id", "figure")
KEPT_PNG_MODES = ("1", "L", "RGB")  # PNGs in these modes are embedded unchanged


@dataclass(frozen=True)
class DatasetLayout:
    """The files of one dataset root, laid out like the official `DATASET/` folder."""

    root: Path
    ocr_engine: str | None = None  # name or key of the OCR cache to read, when ocr/ holds several engines'

    @property
    def json_path(self) -> Path:
        return self.root / "PatentDesc-355k.json"

    @property
    def split_dir(self) -> Path | None:
        return find_split_dir(self.root)

    @property
    def official_ocr_path(self) -> Path:
        return self.root / "ocr.json"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def ocr_cache_paths(self) -> list[Path]:
        folder = self.ocr_folder
        return sorted(folder.glob("ocr_cache*.jsonl")) if folder is not None else []

    @property
    def ocr_folder(self) -> Path | None:
        """The OCR cache folder (`ocr_folders.find_ocr_folder`), `None` when there is no OCR cache."""
        try:
            return find_ocr_folder(self.root / "ocr", self.ocr_engine)
        except FileNotFoundError:
            return None

    @property
    def ocr_engine_record(self) -> dict | None:
        """`engine.to_dict()` of the OCR that made the cache (recorded in the card and the Parquet metadata)."""
        return engine_of_folder(self.ocr_folder) if self.ocr_folder is not None else None

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def output_dir(self) -> Path:
        return self.root / DATASET_NAME


@dataclass(frozen=True)
class BuildOptions:
    ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))  # only without split lists
    seed: int = 0  # only without split lists
    workers: int = 1  # processes checking images; 1 checks them in this process
    max_shard_bytes: int = 500 * 1024**2
    allow_missing_ocr: bool = False
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    ocr_engine: str | None = None  # the OCR cache to read when ocr/ holds several engines' (name or key)

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_shard_bytes < 1:
            raise ValueError(f"BuildOptions needs workers >= 1 and max_shard_bytes >= 1, got {self.workers}, "
                             f"{self.max_shard_bytes}")  # fmt: skip


@dataclass(frozen=True)
class PreparedImage:
    """A checked image: the PNG bytes to embed, or the reason it cannot be used; `note` when it was converted."""

    png: bytes | None = None
    error: str | None = None
    note: str | None = None


@dataclass
class BuildSummary:
    output: Path
    num_examples: dict[str, dict[str, int]]  # config -> split -> rows (only configs and splits with rows)
    num_reported: int

    def __str__(self) -> str:
        counts = "; ".join(
            f"{config}: " + ", ".join(f"{split} {n:,}" for split, n in splits.items())
            for config, splits in self.num_examples.items()
        )
        return f"wrote {self.output} ({counts}); {self.num_reported:,} lines in reports/rejected.jsonl"


def prepare_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> PreparedImage:
    """Reads and checks one image file -> the PNG bytes to embed (see the module docstring), or why not (naming the
    file). Whatever a decoder raises on a damaged file (`SyntaxError`, `IndexError`, `RuntimeError`, ...) is that
    file's error, never the run's."""
    path = Path(path)
    name = f"{path.parent.name}/{path.name}"
    if not path.is_file():
        return PreparedImage(error=f"image file {name} is missing (run `download` first)")
    data = path.read_bytes()
    if not data:
        return PreparedImage(error=f"the image file {name} is empty (0 bytes)")
    try:
        rgb = load_image(data, max_pixels=max_pixels)  # checks the pixel cap first, then decodes every pixel
        with warnings.catch_warnings():  # under our cap now; Pillow's own (lower) warning level is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                image_format, mode, frames = header.format, header.mode, frames_note(header)
    except UnidentifiedImageError:
        return PreparedImage(error=f"{name} is not an image: Pillow cannot identify the file's format")
    except Exception as error:  # noqa: BLE001 (ImageTooLargeError, a damaged file: whatever its decoder raises)
        return PreparedImage(error=f"invalid image {name}: {type(error).__name__}: {error}")
    if image_format == "PNG" and mode in KEPT_PNG_MODES and frames is None:
        return PreparedImage(png=data)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    note = f"{image_format} image in mode {mode} re-encoded as RGB PNG" + (f"; {frames}" if frames else "")
    return PreparedImage(png=buffer.getvalue(), note=note)


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _index_ocr(layout: DatasetLayout, work_dir: Path, report: ReportWriter | None) -> tuple[DiskMap, DiskMap | None]:
    """OCR cache and official ocr.json -> `DiskMap`s image id -> JSON `[words, boxes]` / `[ids, boxes]`."""
    tesseract = DiskMap(work_dir / "ocr_cache.sqlite")
    for image_id, words, boxes in iter_ocr_cache(layout.ocr_cache_paths, report):
        tesseract[image_id] = json.dumps([words, boxes])  # a later line (rerun, other shard) wins
    official = None
    if layout.official_ocr_path.is_file():
        official = DiskMap(work_dir / "official_ocr.sqlite")
        for image_id, ids, boxes in iter_official_ocr(layout.official_ocr_path, report):
            official[image_id] = json.dumps([ids, boxes])
    return tesseract, official


def iter_examples(
    root: str | os.PathLike,
    configs: Sequence[str] = CONFIGS,
    splits: Sequence[str] = SPLITS,
    options: BuildOptions = BuildOptions(),  # noqa: B008 (frozen)
    report: ReportWriter | None = None,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yields `(config, split, row)` for every usable figure of `root` in JSON order, rows as in
    `patentdesc_features` (the image as `{"bytes", "path"}`); whatever is left out goes to `report`.

    Only figures of `splits` have their image checked, so asking for one split costs one JSON pass, not more.
    `work_dir` holds the run's temporary SQLite indexes (default: the system's temporary folder).
    """
    layout = DatasetLayout(Path(root), options.ocr_engine)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".patentdesc-work-") as tmp:
        tesseract, official = _index_ocr(layout, Path(tmp), report)
        assigner = SplitAssigner(layout.split_dir, tmp, options.ratios, options.seed, report)
        seen = DiskMap(Path(tmp) / "seen.sqlite")

        def candidates() -> Iterator[tuple[Record, str, list[str]]]:
            records = iter_records(layout.json_path, report, seen)
            for record in tqdm(records, desc="build", unit=" entries", disable=not progress or None):
                split = assigner.split_of(record.image_id)
                if split not in splits:
                    continue
                kept = [config for config in configs if record.description(config)]
                for config in configs:
                    if config not in kept and report is not None:
                        report.add(record.image_id, f"empty {config} description", action=f"dropped from {config}")
                if kept:
                    yield record, split, kept

        # A worker killed by a signal (the out-of-memory killer, say) fails only the figure it was checking.
        pool = ResilientPool(options.workers) if options.workers > 1 else None
        try:
            for batch in _batched(candidates(), 32 * options.workers):
                arguments = [(layout.images_dir / f"{r.image_id}.png", options.max_image_pixels) for r, _, _ in batch]
                if pool is None:
                    prepared = (prepare_image(*args) for args in arguments)
                else:  # rows go out while the workers check the rest of the batch
                    prepared = map(_prepared, pool.map_in_order(prepare_image, arguments))
                for (record, split, kept), image in zip(batch, prepared):
                    row = _row(record, image, tesseract, official, options, report)
                    for config in kept if row is not None else ():
                        yield config, split, {**row, "description": record.description(config)}
        finally:
            if pool is not None:
                pool.close()
        assigner.report_unused(seen)
        for index in (tesseract, official, seen, assigner):
            if index is not None:
                index.close()


def _prepared(outcome: PreparedImage | WorkerDiedError) -> PreparedImage:
    return PreparedImage(error=str(outcome)) if isinstance(outcome, WorkerDiedError) else outcome


def _row(
    record: Record,
    image: PreparedImage,
    tesseract: DiskMap,
    official: DiskMap | None,
    options: BuildOptions,
    report: ReportWriter | None,
) -> dict[str, Any] | None:
    """The row of one figure without its description, or None (reported) when it cannot be used."""
    if image.error is not None:
        if report is not None:
            report.add(record.image_id, image.error, action="rejected")
        return None
    words_boxes = tesseract.get(record.image_id)
    ids_boxes = official.get(record.image_id) if official is not None else None
    if words_boxes is None and ids_boxes is None and not options.allow_missing_ocr:
        if report is not None:
            reason = "no OCR result (run `ocr` first, or build with --allow-missing-ocr)"
            report.add(record.image_id, reason, action="rejected")
        return None
    if image.note is not None and report is not None:
        report.add(record.image_id, image.note, action="converted")
    words, boxes = json.loads(words_boxes) if words_boxes is not None else (None, None)
    row = {
        "image_id": record.image_id,
        "patent_id": record.patent_id,
        "figure": record.figure,
        "image": {"bytes": image.png, "path": f"{record.image_id}.png"},
        "description": "",
        "ocr_words": words,
        "ocr_boxes": boxes,
    }
    if official is not None:
        row["ocr_input_ids"], row["ocr_bbox"] = json.loads(ids_boxes) if ids_boxes is not None else (None, None)
    return row


class _ShardWriter:
    """The Parquet shards of one config and split: row groups of `ROW_GROUP_BYTES` or `ROW_GROUP_MAX_ROWS`, a new
    shard once the current one holds `max_bytes`; `close` names them `<split>-<i>-of-<n>.parquet`."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, max_bytes: int):
        self.folder, self.split, self.schema, self.max_bytes = folder, split, schema, max_bytes
        self.paths: list[Path] = []
        self.num_examples = 0
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._group_bytes = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.num_examples += 1
        size = len(row["image"]["bytes"]) + len(row["description"]) + 16 * len(row["ocr_words"] or ())
        self._group_bytes += size
        self._shard_bytes += size
        if self._group_bytes >= ROW_GROUP_BYTES or len(self._rows) >= ROW_GROUP_MAX_ROWS:
            self._flush()
        if self._shard_bytes >= self.max_bytes:
            self._close_shard()

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            self.folder.mkdir(exist_ok=True)
            self.paths.append(self.folder / f"{self.split}-{len(self.paths):05d}.parquet")
            # Statistics only for the short id columns: min/max of descriptions and images would bloat the footer.
            self._writer = pq.ParquetWriter(self.paths[-1], self.schema, write_statistics=list(STATISTICS_COLUMNS))
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._rows = []
        self._group_bytes = 0

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._shard_bytes = 0

    def close(self) -> list[Path]:
        """Closes the last shard and renames all; no file when no rows (datasets 5.2 cannot read empty shards)."""
        self._close_shard()
        total = len(self.paths)
        final = [path.with_name(f"{self.split}-{i:05d}-of-{total:05d}.parquet") for i, path in enumerate(self.paths)]
        for path, target in zip(self.paths, final):
            path.rename(target)
        return final


_CARD_BODY = """\
# PatentDesc-355k

About 355K figures from 60K+ US patents, each with a brief and a detailed description written from the patent
text, as released with PatentLMM (Shukla et al., AAAI 2025, [arXiv:2501.15074](https://arxiv.org/abs/2501.15074)).
Built with `python -m dataset_builder build` of the PatentLMM Hugging Face port.

## Configs and columns

- `brief` and `detailed`: one row per figure whose description of that type is not empty (as in the original).
- Columns: `image_id` (`<publication>__<figure>`), `patent_id`, `figure`, `image` (PNG), `description`,
  `ocr_words` and `ocr_boxes` (OCR words and 0-1000 boxes){official}.
- OCR: {ocr} (`processing.ocr`; also in each Parquet file's schema metadata, key `patentlmm_ocr`).

```python
from datasets import load_dataset
brief = load_dataset("patentdesc-355k", "brief")  # from the folder's parent; or the folder's absolute path
```

## Splits

{splits_text}

| config | train | validation | test |
|---|---|---|---|
{table}

## Source and license

- Source: the PatentDesc-355k release of PatentLMM (`PatentDesc-355k.json`, split lists, `ocr.json`), images
  downloaded from each entry's `image_url` (USPTO publications).
- License status: **unknown**. The release does not state a license. The USPTO states that patent text and
  drawings are generally not subject to copyright (37 CFR 1.71(d)/(e) notices aside); check before you
  redistribute or use the data commercially.

## Citation

```bibtex
@inproceedings{{shukla2025patentlmm,
  title     = {{PatentLMM: Large Multimodal Model for Generating Descriptions for Patent Figures}},
  author    = {{Shukla, Shreya and Sharma, Nakul and Gupta, Manish and Mishra, Anand}},
  booktitle = {{Proceedings of the AAAI Conference on Artificial Intelligence}},
  year      = {{2025}}
}}
```
"""


def write_dataset_card(
    folder: Path,
    num_examples: dict[str, dict[str, int]],
    num_bytes: dict[str, dict[str, int]],
    official_ocr: bool,
    split_lists: bool,
    ocr_engine: dict | None = None,
) -> Path:
    """Writes `folder/README.md`: YAML `configs` (data files per split, `brief` the default), `dataset_info`
    (features and split sizes per config), license and tags, then the card text."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(
        pretty_name="PatentDesc-355k",
        license="unknown",
        language=["en"],
        task_categories=["image-to-text"],
        tags=["patents", "figures", "ocr"],
    )
    configs = {
        config: {
            "data_files": [{"split": split, "path": f"{config}/{split}-*.parquet"} for split in splits],
            "default": config == next(iter(num_examples)),
        }
        for config, splits in num_examples.items()
    }
    MetadataConfigs(configs).to_dataset_card_data(card_data)
    infos = {}
    for config, splits in num_examples.items():
        split_dict = SplitDict(dataset_name=DATASET_NAME)
        for split, count in splits.items():
            split_dict.add(SplitInfo(name=split, num_bytes=num_bytes[config][split], num_examples=count))
        infos[config] = DatasetInfo(features=patentdesc_features(official_ocr), splits=split_dict, config_name=config)
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    table = "\n".join(
        f"| {config} | " + " | ".join(f"{splits.get(split, 0):,}" for split in SPLITS) + " |"
        for config, splits in num_examples.items()
    )
    splits_text = (
        "From the official split lists (`val.txt` is the `validation` split)."
        if split_lists
        else "No split lists were given: a deterministic split by patent (no patent in two splits)."
    )
    official = ", and `ocr_input_ids`/`ocr_bbox` (LayoutLMv3 token ids and boxes of the official `ocr.json`)"
    ocr = f"`{json.dumps(ocr_engine, sort_keys=True)}`" if ocr_engine else "none (built without an OCR cache)"
    body = _CARD_BODY.format(
        official=official if official_ocr else "", splits_text=splits_text, table=table, ocr=ocr
    )
    path = folder / "README.md"
    path.write_text(f"---\n{card_data.to_yaml()}\n---\n\n{body}", encoding="utf-8")
    return path


def build_patentdesc_dataset(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: BuildOptions = BuildOptions(),  # noqa: B008 (frozen)
    progress: bool = True,
) -> BuildSummary:
    """Builds `output` (default `root/patentdesc-355k`) from `root`; reports go to `root/reports/rejected.jsonl`
    (replaced at each run). The folder appears complete or not at all."""
    layout = DatasetLayout(Path(root), options.ocr_engine)
    if not layout.json_path.is_file():
        raise FileNotFoundError(f"{layout.json_path} not found: --root must hold PatentDesc-355k.json")
    output = Path(output) if output is not None else layout.output_dir
    output.parent.mkdir(parents=True, exist_ok=True)
    official_ocr = layout.official_ocr_path.is_file()
    ocr_engine = layout.ocr_engine_record
    schema = patentdesc_features(official_ocr).arrow_schema
    if ocr_engine is not None:  # which OCR made the ocr_words/ocr_boxes columns, in every Parquet file
        schema = schema.with_metadata({**(schema.metadata or {}), b"patentlmm_ocr": json.dumps(ocr_engine).encode()})
    report_path = layout.reports_dir / "rejected.jsonl"
    with (
        run_lock(output.with_name(f".{output.name}.lock"), f"a build of {output}"),
        _staging(output) as staging,
    ):
        report_path.unlink(missing_ok=True)
        writers = {}
        for config in CONFIGS:
            for split in SPLITS:
                writers[config, split] = _ShardWriter(staging / config, split, schema, options.max_shard_bytes)
        with ReportWriter(report_path, "build") as report:
            for config, split, row in iter_examples(
                root, options=options, report=report, work_dir=staging, progress=progress
            ):
                writers[config, split].add(row)
            num_reported = report.count
        # Splits and configs without rows are left out of the folder and the card (empty shards cannot be read).
        num_examples, num_bytes = {}, {}
        for (config, split), writer in writers.items():
            paths = writer.close()
            if paths:
                num_examples.setdefault(config, {})[split] = writer.num_examples
                num_bytes.setdefault(config, {})[split] = sum(path.stat().st_size for path in paths)
        if not num_examples:
            raise ValueError(f"no usable figure in {root}: see why in {report_path}")
        write_dataset_card(staging, num_examples, num_bytes, official_ocr, layout.split_dir is not None, ocr_engine)
    return BuildSummary(output=output, num_examples=num_examples, num_reported=num_reported)


@contextlib.contextmanager
def _staging(output: Path) -> Iterator[Path]:
    """The temporary folder that replaces `output` at the end (`files.atomic_directory`), after deleting what a
    killed build left (`.patentdesc-355k.tmp-*`); the caller holds the build's lock."""
    remove_stale_temporaries(output)
    with atomic_directory(output) as staging:
        yield staging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="dataset folder laid out like the official DATASET/")
    parser.add_argument("--output", type=Path, help="output folder (default: ROOT/patentdesc-355k)")
    parser.add_argument(
        "--ratios", type=parse_ratios, default=DEFAULT_RATIOS, help="train,validation,test ratios without split lists"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split by patent (without split lists)")
    parser.add_argument(
        "--workers",
        type=at_least(1),
        default=min(4, os.cpu_count() or 1),
        help="processes checking images (default: %(default)s)",
    )
    parser.add_argument(
        "--max-shard-mb", type=at_least(1), default=500, help="Parquet shard size (default: %(default)s MB)"
    )
    parser.add_argument("--allow-missing-ocr", action="store_true", help="keep figures without OCR (null OCR columns)")
    parser.add_argument("--ocr-engine", default=None, help="the OCR cache to use when ocr/ holds several (name or key)")
    parser.add_argument(
        "--max-image-pixels", type=at_least(1), default=DEFAULT_MAX_IMAGE_PIXELS, help="pixel cap (decompression bombs)"
    )


def run(args: argparse.Namespace) -> int:
    options = BuildOptions(
        ratios=args.ratios,
        seed=args.seed,
        workers=args.workers,
        max_shard_bytes=args.max_shard_mb * 1024**2,
        allow_missing_ocr=args.allow_missing_ocr,
        max_image_pixels=args.max_image_pixels,
        ocr_engine=args.ocr_engine,
    )
    summary = build_patentdesc_dataset(args.root, args.output, options)
    print(summary)
    return 0

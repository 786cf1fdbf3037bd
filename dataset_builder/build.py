"""`build`: a dataset root -> the script-free `datasets` folder `patentdesc-355k/` (Parquet shards + dataset card)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from patentlmm_common.files import atomic_directory, remove_stale_temporaries, run_lock

from .card import write_dataset_card
from .features import CONFIGS, patentdesc_features
from .layout import DatasetLayout
from .options import BuildOptions
from .parquet import ShardWriter
from .pretraining import (
    PRETRAINING_CONFIG,
    has_layout,
    iter_pretraining_rows,
    pretraining_features,
    pretraining_metadata,
)
from .reports import ReportWriter
from .rows import iter_rows
from .splits import SPLITS

__all__ = ["BuildSummary", "build_patentdesc_dataset", "build_root"]


@dataclass
class BuildSummary:
    output: Path
    num_examples: dict[str, dict[str, int]]  # config -> split -> rows (only configs and splits with rows)
    num_reported: int
    report_path: Path

    def __str__(self) -> str:
        counts = "; ".join(
            f"{config}: " + ", ".join(f"{split} {n:,}" for split, n in splits.items())
            for config, splits in self.num_examples.items()
        )
        return f"wrote {self.output} ({counts}); {self.num_reported:,} lines in {self.report_path}"


def build_patentdesc_dataset(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: BuildOptions = BuildOptions(),  # noqa: B008 (frozen)
    progress: bool = True,
    report_path: str | os.PathLike | None = None,
) -> BuildSummary:
    """Builds `output` (default `root/patentdesc-355k`) from `root`; reports go to `report_path` (default
    `root/reports/rejected.jsonl`, replaced at each run). The folder appears complete or not at all.

    The `brief` and `detailed` configs need `PatentDesc-355k.json`; the `pretraining` config is written when the
    root has a `layout/` cache (`layout` step), so a root of drawings without descriptions gives that config alone."""
    layout = DatasetLayout(Path(root), options.ocr_engine)
    if not layout.json_path.is_file() and not has_layout(layout):
        raise FileNotFoundError(
            f"{layout.json_path} not found: --root must hold PatentDesc-355k.json (or, for the pretraining config "
            "alone, a layout/ cache: run `layout`)"
        )
    output = Path(output) if output is not None else layout.output_dir
    output.parent.mkdir(parents=True, exist_ok=True)
    official_ocr = layout.official_ocr_path.is_file()
    ocr_engine = layout.ocr_engine_record
    report_path = Path(report_path) if report_path is not None else layout.reports_dir / "rejected.jsonl"
    with (
        run_lock(output.with_name(f".{output.name}.lock"), f"a build of {output}"),
        _staging(output) as staging,
    ):
        report_path.unlink(missing_ok=True)
        writers = _writers(layout, staging, options, ocr_engine)
        with ReportWriter(report_path, "build") as report:
            if layout.json_path.is_file():
                rows = iter_rows(root, options=options, report=report, work_dir=staging, progress=progress)
                for config, split, row in rows:
                    writers[config, split].add(row)
            if has_layout(layout):
                for row in iter_pretraining_rows(root, options, report, staging, progress):
                    writers[PRETRAINING_CONFIG, "train"].add(row)
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
    return BuildSummary(output, num_examples, num_reported, report_path)


def _writers(
    layout: DatasetLayout, staging: Path, options: BuildOptions, ocr_engine: dict | None
) -> dict[tuple[str, str], ShardWriter]:
    """(config, split) -> its `ShardWriter`: every description config and split when the root has the JSON, the
    `pretraining` train split when it has a layout cache; the OCR engine (and the layout and tokenizer records) in
    every Parquet file's schema metadata."""
    ocr_metadata = {b"patentlmm_ocr": json.dumps(ocr_engine).encode()} if ocr_engine is not None else {}
    writers = {}
    if layout.json_path.is_file():
        schema = patentdesc_features(layout.official_ocr_path.is_file()).arrow_schema
        schema = schema.with_metadata({**(schema.metadata or {}), **ocr_metadata})
        for config in CONFIGS:
            for split in SPLITS:
                writers[config, split] = ShardWriter(staging / config, split, schema, options.max_shard_bytes)
    if has_layout(layout):
        schema = pretraining_features().arrow_schema
        schema = schema.with_metadata({**(schema.metadata or {}), **ocr_metadata, **pretraining_metadata(layout)})
        folder = staging / PRETRAINING_CONFIG
        writers[PRETRAINING_CONFIG, "train"] = ShardWriter(folder, "train", schema, options.max_shard_bytes)
    return writers


@contextlib.contextmanager
def _staging(output: Path) -> Iterator[Path]:
    """The temporary folder that replaces `output` at the end (`files.atomic_directory`), after deleting what a
    killed build left (`.patentdesc-355k.tmp-*`); the caller holds the build's lock."""
    remove_stale_temporaries(output)
    with atomic_directory(output) as staging:
        yield staging


def build_root(
    root: str | os.PathLike,
    options: BuildOptions = BuildOptions(),  # noqa: B008 (frozen)
    output: str | os.PathLike | None = None,
) -> int:
    """`build` on a dataset root (see `build_patentdesc_dataset`); prints the summary and returns 0."""
    print(build_patentdesc_dataset(root, output, options))
    return 0

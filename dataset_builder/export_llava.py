"""`export-llava`: the original code's training files, `llava_json/{brief,detailed}_{train,val}`.

    python -m dataset_builder export-llava --root DATASET

For users of the original LLaVA-based code: the same files its `prep_patent_data.py` writes (SPEC §2). Each is a
JSON list (written with `json.dump`'s default formatting, streamed) of

    {"id": "<image_id>", "image": "<image_id>.png", "conversations": [
        {"from": "human", "value": "<image>\\nWrite a brief description for this patent image."},
        {"from": "gpt", "value": "<description, stripped, escaped: every < -> [[ and > -> ]]>"}]}

A figure appears when its split list names it (`val.txt` gives `*_val`; without lists, the split by patent of
`splits.py`), its description of that type is not empty, and `images/<image_id>.png` exists (the original
training would fail on a missing image). Everything left out is reported in `reports/export_llava_rejected.jsonl`.
The order is the JSON's (the original's comes from a Python `set`, so it varies from run to run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from processing.prompts import escape_description

from .build import DatasetLayout
from .features import CONFIGS
from .files import TEMP_MARK, atomic_write, remove_stale_temporaries, run_lock
from .records import DiskMap, iter_records
from .reports import ReportWriter
from .splits import DEFAULT_RATIOS, SPLIT_FILE_STEMS, SplitAssigner, parse_ratios

__all__ = ["EXPORT_SPLITS", "add_arguments", "export_llava", "llava_sample", "run"]

EXPORT_SPLITS = ("train", "validation")  # written as *_train and *_val, like the original


def llava_sample(image_id: str, desc_type: str, description: str) -> dict[str, Any]:
    """One entry of the original LLaVA export (the description stripped and escaped)."""
    return {
        "id": image_id,
        "image": f"{image_id}.png",
        "conversations": [
            {"from": "human", "value": f"<image>\nWrite a {desc_type} description for this patent image."},
            {"from": "gpt", "value": escape_description(description.strip())},
        ],
    }


def export_llava(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    ratios: dict[str, float] = DEFAULT_RATIOS,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    """Writes the four files to `output` (default `root/llava_json`), each atomically (`files.atomic_write`: the
    usual umask, renamed into place when complete); returns the number of entries per file name. Temporaries of a
    killed export are deleted first; a second export into the same folder at once stops with a clear message."""
    layout = DatasetLayout(Path(root))
    output = Path(output) if output is not None else layout.root / "llava_json"
    output.mkdir(parents=True, exist_ok=True)
    report_path = layout.reports_dir / "export_llava_rejected.jsonl"
    names = {(config, split): f"{config}_{SPLIT_FILE_STEMS[split]}" for config in CONFIGS for split in EXPORT_SPLITS}
    counts = dict.fromkeys(names.values(), 0)
    with contextlib.ExitStack() as stack:
        stack.enter_context(run_lock(output.with_name(f".{output.name}.lock"), f"an export-llava into {output}"))
        for name in [*names.values(), "work"]:
            remove_stale_temporaries(output / name)
        report_path.unlink(missing_ok=True)
        handles = {key: stack.enter_context(atomic_write(output / name)) for key, name in names.items()}
        for handle in handles.values():
            handle.write("[")
        with (
            tempfile.TemporaryDirectory(dir=output, prefix=f".work{TEMP_MARK}") as tmp,
            ReportWriter(report_path, "export-llava") as report,
        ):
            assigner = SplitAssigner(layout.split_dir, tmp, ratios, seed, report)
            seen = DiskMap(Path(tmp) / "seen.sqlite")
            records = iter_records(layout.json_path, report, seen)
            for record in tqdm(records, desc="export-llava", unit=" entries", disable=not progress or None):
                split = assigner.split_of(record.image_id)
                if split not in EXPORT_SPLITS:
                    continue
                if not (layout.images_dir / f"{record.image_id}.png").is_file():
                    report.add(record.image_id, "image file is missing (run `download` first)")
                    continue
                for config in CONFIGS:
                    description = record.description(config)
                    if not description:
                        report.add(record.image_id, f"empty {config} description: not in {names[config, split]}")
                        continue
                    name = names[config, split]
                    sample = json.dumps(llava_sample(record.image_id, config, description))
                    handles[config, split].write((", " if counts[name] else "") + sample)  # json.dump's separator
                    counts[name] += 1
            assigner.report_unused(seen)
            seen.close()
            assigner.close()
        for handle in handles.values():
            handle.write("]")
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, required=True, help="dataset folder laid out like the official DATASET/")
    parser.add_argument("--output", type=Path, help="output folder (default: ROOT/llava_json)")
    parser.add_argument(
        "--ratios", type=parse_ratios, default=DEFAULT_RATIOS, help="train,validation,test ratios without split lists"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split by patent (without split lists)")


def run(args: argparse.Namespace) -> int:
    counts = export_llava(args.root, args.output, args.ratios, args.seed)
    print("wrote " + ", ".join(f"{name} ({count:,})" for name, count in counts.items()))
    return 0

"""`export-llava`: the original code's training files `llava_json/{brief,detailed}_{train,val}`, streamed, atomic."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from patentlmm_common.files import TEMP_MARK, atomic_write, remove_stale_temporaries, run_lock
from processing.constants import DEFAULT_IMAGE_TOKEN
from processing.prompts import escape_description, instruction

from .diskmap import DiskMap
from .entries import iter_entries
from .features import CONFIGS
from .layout import DatasetLayout
from .options import ExportOptions
from .reports import ReportWriter
from .splits import SPLIT_FILE_STEMS, SplitAssigner

__all__ = ["EXPORT_SPLITS", "export_llava", "export_root", "llava_sample"]

EXPORT_SPLITS = ("train", "validation")  # written as *_train and *_val, like the original


def llava_sample(image_id: str, desc_type: str, description: str) -> dict[str, Any]:
    """One entry of the original LLaVA export (the description stripped and escaped)."""
    return {
        "id": image_id,
        "image": f"{image_id}.png",
        "conversations": [
            {"from": "human", "value": f"{DEFAULT_IMAGE_TOKEN}\n{instruction(desc_type)}"},
            {"from": "gpt", "value": escape_description(description.strip())},
        ],
    }


def export_llava(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    options: ExportOptions = ExportOptions(),  # noqa: B008 (frozen)
    progress: bool = True,
) -> dict[str, int]:
    """Writes the four files to `output` (default `root/llava_json`), each atomically (`files.atomic_write`: the
    usual umask, renamed into place when complete); returns the number of entries per file name. Temporaries of a
    killed export are deleted first; a second export into the same folder at once stops with a clear message.

    Each file is a JSON list (`json.dump`'s formatting) of `llava_sample`s, in the JSON's order, of the figures
    of its split (`val.txt` gives `*_val`) whose description of that type is not empty and whose image exists;
    what is left out goes to `reports/export_llava_rejected.jsonl`."""
    layout = DatasetLayout(Path(root))
    output = Path(output) if output is not None else layout.llava_dir
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
            assigner = SplitAssigner(layout.split_dir, tmp, options.ratios, options.seed, report)
            seen = DiskMap(Path(tmp) / "seen.sqlite")
            entries = iter_entries(layout.json_path, report, seen)
            for entry in tqdm(entries, desc="export-llava", unit=" entries", disable=not progress or None):
                split = assigner.split_of(entry.image_id)
                if split not in EXPORT_SPLITS:
                    continue
                if not (layout.images_dir / f"{entry.image_id}.png").is_file():
                    report.add(entry.image_id, "image file is missing (run `download` first)")
                    continue
                for config in CONFIGS:
                    description = entry.description(config)
                    if not description:
                        report.add(entry.image_id, f"empty {config} description: not in {names[config, split]}")
                        continue
                    name = names[config, split]
                    sample = json.dumps(llava_sample(entry.image_id, config, description))
                    handles[config, split].write((", " if counts[name] else "") + sample)  # json.dump's separator
                    counts[name] += 1
            assigner.report_unused(seen)
            seen.close()
            assigner.close()
        for handle in handles.values():
            handle.write("]")
    return counts


def export_root(
    root: str | os.PathLike,
    options: ExportOptions = ExportOptions(),  # noqa: B008 (frozen)
    output: str | os.PathLike | None = None,
) -> int:
    """`export-llava` on a dataset root (see `export_llava`); prints what it wrote and returns 0."""
    counts = export_llava(root, output, options)
    print("wrote " + ", ".join(f"{name} ({count:,})" for name, count in counts.items()))
    return 0

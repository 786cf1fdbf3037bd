"""Which split each figure belongs to: the official split lists when present, else a deterministic split by patent."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from .diskmap import DiskMap
from .entries import iter_split_file
from .ids import patent_id_of
from .reports import ReportWriter

__all__ = [
    "DEFAULT_RATIOS",
    "SPLITS",
    "SPLIT_FILE_STEMS",
    "SplitAssigner",
    "parse_ratios",
    "split_of_patent",
]

SPLITS = ("train", "validation", "test")
SPLIT_FILE_STEMS = {"train": "train", "validation": "val", "test": "test"}  # split -> file name without `.txt`
DEFAULT_RATIOS = {"train": 0.9, "validation": 0.05, "test": 0.05}


def parse_ratios(text: str) -> dict[str, float]:
    """`"0.8,0.1,0.1"` -> `{"train": 0.8, "validation": 0.1, "test": 0.1}`; the three must be >= 0 and sum to 1."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"ratios must be three numbers like 0.9,0.05,0.05, got {text!r}") from None
    if len(values) != 3 or any(value < 0 for value in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three numbers >= 0 (train,validation,test) summing to 1, got {text!r}")
    return dict(zip(SPLITS, values))


def split_of_patent(patent_id: str, ratios: Mapping[str, float] = DEFAULT_RATIOS, seed: int = 0) -> str:
    """The split of every figure of `patent_id`: a uniform draw from SHA-256(seed, patent) against `ratios`."""
    digest = hashlib.sha256(f"{seed}:{patent_id}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    cumulative = 0.0
    for split in SPLITS:
        cumulative += ratios[split]
        if draw < cumulative:
            return split
    return SPLITS[-1]  # rounding: the ratios sum to 1 within 1e-6


class SplitAssigner:
    """Image id -> split for one run. Split lists are indexed into a `DiskMap` under `work_dir` (flat memory)."""

    def __init__(
        self,
        split_dir: str | os.PathLike | None,
        work_dir: str | os.PathLike,
        ratios: Mapping[str, float] = DEFAULT_RATIOS,
        seed: int = 0,
        report: ReportWriter | None = None,
    ):
        self.ratios, self.seed, self.report = dict(ratios), seed, report
        self._listed: DiskMap | None = None  # id -> split ("" for all.txt-only ids), None: split by patent
        self._list_file: dict[str, str] = {}  # split -> its file name, for messages
        if split_dir is None:
            return
        split_dir = Path(split_dir)
        files = {split: split_dir / f"{stem}.txt" for split, stem in SPLIT_FILE_STEMS.items()}
        files = {split: path for split, path in files.items() if path.is_file()}
        if not files and (split_dir / "all.txt").is_file():
            files = {"": split_dir / "all.txt"}
        if not files:
            return
        self._listed = DiskMap(Path(work_dir) / "split_lists.sqlite")
        conflicts = DiskMap(Path(work_dir) / "split_conflicts.sqlite")
        for split, path in files.items():
            self._list_file[split] = path.name
            for image_id in iter_split_file(path, report):
                if image_id in conflicts:
                    continue
                previous = self._listed.get(image_id)
                if previous is None:
                    self._listed[image_id] = split
                elif previous == split:
                    self._report(image_id, f"listed twice in {path.name}: the first line is used")
                else:  # in two lists: dropped from both, since keeping either would leak it across splits
                    self._report(image_id, f"listed in both {self._list_file[previous]} and {path.name}: left out")
                    conflicts.add(image_id)
                    del self._listed[image_id]
        conflicts.close()

    def _report(self, image_id: str, reason: str) -> None:
        if self.report is not None:
            self.report.add(image_id, reason)

    def split_of(self, image_id: str) -> str | None:
        """The split of a valid image id, or None (reported) when split lists exist and none lists it."""
        if self._listed is None:
            return split_of_patent(patent_id_of(image_id), self.ratios, self.seed)
        split = self._listed.get(image_id)
        if split is None:
            files = ", ".join(self._list_file.values())
            self._report(image_id, f"in PatentDesc-355k.json but not in any split list ({files}): left out")
            return None
        return split or split_of_patent(patent_id_of(image_id), self.ratios, self.seed)

    def report_unused(self, seen: DiskMap | set) -> int:
        """Reports every listed id that is not among the valid ids `seen` in the JSON; returns how many."""
        if self._listed is None:
            return 0
        count = 0
        for image_id in self._listed.keys():
            if image_id not in seen:
                split = self._listed[image_id]
                self._report(image_id, f"listed in {self._list_file[split]} but not a valid entry of the JSON")
                count += 1
        return count

    def close(self) -> None:
        if self._listed is not None:
            self._listed.close()

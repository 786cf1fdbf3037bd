"""`DatasetLayout`: where each file of a dataset root is (laid out like the official `DATASET/` folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .entries import find_split_dir
from .ids import validate_drawing_id, validate_image_id
from .ocr_folders import engine_of_folder, find_ocr_folder

__all__ = ["DATASET_JSON", "DATASET_NAME", "DatasetLayout"]

DATASET_JSON = "PatentDesc-355k.json"  # the official release's file
DATASET_NAME = "patentdesc-355k"  # the folder `build` writes


@dataclass(frozen=True)
class DatasetLayout:
    """The files of one dataset root, laid out like the official `DATASET/` folder."""

    root: Path
    ocr_engine: str | None = None  # name or key of the OCR cache to read, when ocr/ holds several engines'

    @property
    def json_path(self) -> Path:
        return self.root / DATASET_JSON

    def validate_id(self, image_id: object) -> str:
        """`image_id` if the root takes it, else `InvalidImageIdError`: a root with PatentDesc-355k.json takes its
        `<publication>__<figure>` ids alone (`validate_image_id`), a folder of drawings any safe file stem
        (`validate_drawing_id`)."""
        return validate_image_id(image_id) if self.json_path.is_file() else validate_drawing_id(image_id)

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
    def ocr_dir(self) -> Path:
        return self.root / "ocr"

    @property
    def ocr_folder(self) -> Path | None:
        """The OCR cache folder (`ocr_folders.find_ocr_folder`), `None` when there is no OCR cache."""
        try:
            return find_ocr_folder(self.ocr_dir, self.ocr_engine)
        except FileNotFoundError:
            return None

    @property
    def ocr_cache_paths(self) -> list[Path]:
        folder = self.ocr_folder
        return sorted(folder.glob("ocr_cache*.jsonl")) if folder is not None else []

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

    @property
    def llava_dir(self) -> Path:
        return self.root / "llava_json"

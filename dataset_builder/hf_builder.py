"""`PatentDesc355k`: a `datasets` builder over a dataset root, loading the Parquet shards `build` writes for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.builder import Key
from datasets.table import table_cast

from patentlmm_common.paper import ARXIV_URL, CITATION
from processing.constants import DEFAULT_MAX_IMAGE_PIXELS

from .build import build_patentdesc_dataset
from .features import CONFIGS, patentdesc_features
from .layout import DATASET_NAME, DatasetLayout
from .options import BuildOptions
from .pretraining import PRETRAINING_CONFIG, pretraining_features
from .splits import DEFAULT_RATIOS, SPLITS

__all__ = ["PatentDesc355k", "PatentDesc355kConfig"]

_DESCRIPTION = "PatentDesc-355k: patent figures with brief and detailed descriptions and OCR (PatentLMM)."


@dataclass
class PatentDesc355kConfig(datasets.BuilderConfig):
    """`name` is the description type or `pretraining`; `data_dir` the dataset root; the rest as `build`'s options."""

    ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    seed: int = 0
    allow_missing_ocr: bool = False
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


class PatentDesc355k(datasets.ArrowBasedBuilder):
    """PatentDesc-355k from a dataset root (`data_dir`), one config per description type, and `pretraining` (the
    figures with layout elements, train split alone; a root of drawings without the JSON has this config alone).

    `download_and_prepare` runs `build` (the one writer of the rows) into the builder's download folder, report
    included (`rejected.jsonl` there, not in the root), and loads its shards of this config:

        builder = PatentDesc355k(config_name="brief", data_dir="DATASET", cache_dir="hf-cache")
        builder.download_and_prepare()
        brief = builder.as_dataset()  # DatasetDict: the splits with rows of train, validation, test
    """

    BUILDER_CONFIG_CLASS = PatentDesc355kConfig
    BUILDER_CONFIGS = [
        *(PatentDesc355kConfig(name=config, description=f"{config} descriptions") for config in CONFIGS),
        PatentDesc355kConfig(name=PRETRAINING_CONFIG, description="figures with layout elements, OCR, visual tokens"),
    ]
    DEFAULT_CONFIG_NAME = CONFIGS[0]

    def _layout(self) -> DatasetLayout:
        if not self.config.data_dir:
            raise ValueError("PatentDesc355k needs data_dir: the folder holding PatentDesc-355k.json (or images/).")
        return DatasetLayout(Path(self.config.data_dir))

    def _info(self) -> datasets.DatasetInfo:
        official_ocr = self.config.data_dir is not None and self._layout().official_ocr_path.is_file()
        pretraining = self.config.name == PRETRAINING_CONFIG
        features = pretraining_features() if pretraining else patentdesc_features(official_ocr)
        return datasets.DatasetInfo(description=_DESCRIPTION, features=features, homepage=ARXIV_URL, citation=CITATION)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        layout = self._layout()
        work = Path(dl_manager.download_config.cache_dir) / f"{DATASET_NAME}-{self.config_id}"
        options = BuildOptions(
            ratios=self.config.ratios,
            seed=self.config.seed,
            allow_missing_ocr=self.config.allow_missing_ocr,
            max_image_pixels=self.config.max_image_pixels,
        )
        output = work / DATASET_NAME
        build_patentdesc_dataset(layout.root, output, options, progress=False, report_path=work / "rejected.jsonl")
        shards = {split: sorted((output / self.config.name).glob(f"{split}-*.parquet")) for split in SPLITS}
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"files": files}) for split, files in shards.items() if files
        ]

    def _generate_tables(self, files: list[Path]):
        schema = self.info.features.arrow_schema
        for file_index, path in enumerate(files):
            for batch_index, batch in enumerate(pq.ParquetFile(path).iter_batches()):
                yield Key(file_index, batch_index), table_cast(pa.Table.from_batches([batch]), schema)

"""`PatentDesc355k`: a `datasets.GeneratorBasedBuilder` over the raw files, for use in code.

datasets >= 4 no longer runs loading scripts, so `load_dataset("patentdesc-355k")` reads the Parquet folder that
`build` writes. This builder produces the same rows and features straight from a dataset root, without that
folder (one JSON pass per split; it writes no report):

    from dataset_builder import PatentDesc355k
    builder = PatentDesc355k(config_name="brief", data_dir="DATASET", cache_dir="hf-cache")
    builder.download_and_prepare()
    brief = builder.as_dataset()  # DatasetDict: train, validation, test
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets.builder import Key

from processing.constants import DEFAULT_MAX_IMAGE_PIXELS

from .build import BuildOptions, DatasetLayout, iter_examples
from .features import CONFIGS, patentdesc_features
from .splits import DEFAULT_RATIOS, SPLITS

__all__ = ["PatentDesc355k", "PatentDesc355kConfig"]

_DESCRIPTION = "PatentDesc-355k: patent figures with brief and detailed descriptions and OCR (PatentLMM)."
_CITATION = (
    "@inproceedings{shukla2025patentlmm, title={PatentLMM: Large Multimodal Model for Generating Descriptions for "
    "Patent Figures}, author={Shukla, Shreya and Sharma, Nakul and Gupta, Manish and Mishra, Anand}, "
    "booktitle={Proceedings of the AAAI Conference on Artificial Intelligence}, year={2025}}"
)


@dataclass
class PatentDesc355kConfig(datasets.BuilderConfig):
    """`name` is the description type; `data_dir` the dataset root; the rest as `build`'s options."""

    ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    seed: int = 0
    allow_missing_ocr: bool = False
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


class PatentDesc355k(datasets.GeneratorBasedBuilder):
    """PatentDesc-355k from a dataset root (`data_dir`), one config per description type."""

    BUILDER_CONFIG_CLASS = PatentDesc355kConfig
    BUILDER_CONFIGS = [PatentDesc355kConfig(name=config, description=f"{config} descriptions") for config in CONFIGS]
    DEFAULT_CONFIG_NAME = CONFIGS[0]

    def _layout(self) -> DatasetLayout:
        if not self.config.data_dir:
            raise ValueError("PatentDesc355k needs data_dir: the folder holding PatentDesc-355k.json.")
        return DatasetLayout(Path(self.config.data_dir))

    def _info(self) -> datasets.DatasetInfo:
        official_ocr = self.config.data_dir is not None and self._layout().official_ocr_path.is_file()
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=patentdesc_features(official_ocr),
            homepage="https://arxiv.org/abs/2501.15074",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        self._layout()
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in SPLITS]

    def _generate_examples(self, split: str):
        options = BuildOptions(
            ratios=self.config.ratios,
            seed=self.config.seed,
            allow_missing_ocr=self.config.allow_missing_ocr,
            max_image_pixels=self.config.max_image_pixels,
        )
        rows = iter_examples(self.config.data_dir, [self.config.name], [split], options, progress=False)
        for index, (_, _, row) in enumerate(rows):
            yield Key(0, index), row

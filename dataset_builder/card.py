"""The dataset card of the built folder: YAML configs, features and split sizes (via `datasets`), then the text."""

from __future__ import annotations

import json
from pathlib import Path

from patentlmm_common.paper import ARXIV_URL, CITATION

from .features import patentdesc_features
from .layout import DATASET_NAME
from .pretraining import PRETRAINING_CONFIG, pretraining_features
from .splits import SPLITS

__all__ = ["write_dataset_card"]

_CARD_BODY = """\
# PatentDesc-355k

About 355K figures from 60K+ US patents, each with a brief and a detailed description written from the patent
text, as released with PatentLMM (Shukla et al., AAAI 2025, [arXiv:2501.15074]({arxiv_url})).
Built with `python -m dataset_builder build` of the PatentLMM Hugging Face port.

## Configs and columns

- `brief` and `detailed`: one row per figure whose description of that type is not empty (as in the original).
- Columns: `image_id` (`<publication>__<figure>`), `patent_id`, `figure`, `image` (PNG), `description`,
  `ocr_words` and `ocr_boxes` (OCR words and 0-1000 boxes){official}.
- `pretraining` (when the root had a `layout/` cache; split `train` only): one row per figure with layout elements,
  for PatentMME pretraining: `image_id`, `image`, `ocr_words`, `ocr_boxes`, `layout_boxes` (0-1000),
  `layout_classes` (indices of node, node_label, figure_label, text, arrow), `visual_tokens` (null when not computed).
- OCR: {ocr} (`processing.ocr_engines`; also in each Parquet file's schema metadata, key `patentlmm_ocr`).

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
{citation}
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
        features = pretraining_features() if config == PRETRAINING_CONFIG else patentdesc_features(official_ocr)
        infos[config] = DatasetInfo(features=features, splits=split_dict, config_name=config)
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
        official=official if official_ocr else "",
        splits_text=splits_text,
        table=table,
        ocr=ocr,
        citation=CITATION,
        arxiv_url=ARXIV_URL,
    )
    path = folder / "README.md"
    path.write_text(f"---\n{card_data.to_yaml()}\n---\n\n{body}", encoding="utf-8")
    return path

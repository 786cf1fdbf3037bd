"""The training tests' session fixtures: a PatentDesc-355k folder of five real figures and a small PatentLMM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset

from helpers.training import PATENTDESC_README


@pytest.fixture(scope="session")
def patentdesc_dir(tmp_path_factory, figures) -> Path:
    """A script-free PatentDesc-355k folder (brief config) made of the five real figures: OCR'd once by Tesseract at
    full size (boxes are 0-1000, size-free), then stored at <= 512 px so that decoding them does not dominate."""
    from dataset_builder.features import patentdesc_features
    from processing.images import load_image
    from processing.ocr_tesseract import run_tesseract

    rows = {key: [] for key in ("image_id", "patent_id", "figure", "image", "description", "ocr_words", "ocr_boxes")}
    for image_id, entry in sorted(figures.items()):
        figure = load_image(entry["path"])
        words, boxes = run_tesseract(figure)
        figure.thumbnail((512, 512))
        patent, index = image_id.split("__")
        values = (image_id, patent, index, figure, entry["brief_description"], words, boxes)
        for key, value in zip(rows, values):
            rows[key].append(value)
    dataset = Dataset.from_dict(rows, features=patentdesc_features())  # the schema dataset_builder writes
    folder = tmp_path_factory.mktemp("patentdesc-355k")
    (folder / "brief").mkdir()
    dataset.to_parquet(str(folder / "brief" / "train-00000-of-00001.parquet"))
    dataset.select(range(2)).to_parquet(str(folder / "brief" / "validation-00000-of-00001.parquet"))
    (folder / "README.md").write_text(PATENTDESC_README, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """(PatentLMM folder, base LLM folder): a tiny random PatentLMM at 64 px (17 image positions instead of 577,
    so a step takes about a second) and its decoder + LM head alone as a LLaMA causal LM with its tokenizer."""
    from transformers import LlamaForCausalLM

    from patentlmm.assembly.tiny import TinyModelArguments, build_tiny

    model, processor = build_tiny(TinyModelArguments(input_size=64))
    with torch.no_grad():  # peaked next-token distributions, as a pretrained LM has (default init: all near uniform)
        model.lm_head.weight.normal_(0.0, 0.2)
    patentlmm_dir = tmp_path_factory.mktemp("small-patentlmm")
    model.save_pretrained(patentlmm_dir)
    processor.save_pretrained(patentlmm_dir)

    llm = LlamaForCausalLM(model.config.text_config)
    llm.model.load_state_dict(model.model.language_model.state_dict())
    llm.lm_head.load_state_dict(model.lm_head.state_dict())
    llm_dir = tmp_path_factory.mktemp("base-llm")
    llm.save_pretrained(llm_dir)
    processor.tokenizer.save_pretrained(llm_dir)
    return patentlmm_dir, llm_dir

"""PatentDesc-355k splits as TRL's conversational training rows (instruction + escaped description, figure, OCR)."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from transformers import PreTrainedTokenizerBase
from trl import ScriptArguments, SFTConfig

from processing import PatentLMMProcessor, build_messages, escape_description

from .arguments import PatentLMMArguments

__all__ = ["load_patentdesc", "to_conversational", "training_rows"]


def load_patentdesc(name: str, config: str | None) -> DatasetDict:
    """PatentDesc-355k (`config` brief or detailed) from a dataset folder, a `save_to_disk` folder or a Hub id."""
    for folder in (Path(name) / (config or ""), Path(name)):
        if (folder / "dataset_dict.json").is_file():
            return load_from_disk(str(folder))
    return load_dataset(name, config)


def to_conversational(
    dataset: Dataset, desc_type: str, tokenizer: PreTrainedTokenizerBase | None = None, num_image_patches: int = 0
) -> Dataset:
    """Adds TRL's conversational `messages` (the instruction and the escaped description) in place of
    `description`; the figure stays in `image` and the OCR columns stay as they are.

    With a `tokenizer`, also adds `length`, an estimate of each sample's sequence length (description tokens + OCR
    words + `num_image_patches`) for `train_sampling_strategy: group_by_length`. Only the text columns are
    rewritten: the images are not copied.
    """
    ocr_column = "ocr_input_ids" if "ocr_input_ids" in dataset.column_names else "ocr_words"
    columns = ["description"] + ([ocr_column] if ocr_column in dataset.column_names else [])

    def convert(batch: dict[str, list]) -> dict[str, list]:
        out = {"messages": [build_messages(desc_type, escape_description(text)) for text in batch["description"]]}
        if tokenizer is not None:
            ocr = batch.get(ocr_column) or [[]] * len(batch["description"])
            ids = tokenizer(batch["description"], add_special_tokens=False)["input_ids"]
            out["length"] = [len(d) + len(o or []) + num_image_patches for d, o in zip(ids, ocr)]
        return out

    text = dataset.select_columns(columns).map(convert, batched=True, remove_columns=columns, desc="conversations")
    return concatenate_datasets([dataset.remove_columns(["description"]), text], axis=1)


def _first(dataset: Dataset, count: int | None) -> Dataset:
    return dataset if count is None else dataset.select(range(min(count, len(dataset))))


def training_rows(
    script_args: ScriptArguments,
    training_args: SFTConfig,
    patentlmm_args: PatentLMMArguments,
    processor: PatentLMMProcessor,
    desc_type: str,
) -> tuple[Dataset, Dataset | None]:
    """(training rows, evaluation rows or None when `eval_strategy` is "no"), conversational, each cut to its
    `max_*_samples`; the training rows carry `length` when batches are grouped by length."""
    splits = load_patentdesc(script_args.dataset_name, script_args.dataset_config)
    train = _first(splits[script_args.dataset_train_split], patentlmm_args.max_train_samples)
    evaluation = None
    if training_args.eval_strategy != "no":
        evaluation = _first(splits[script_args.dataset_test_split], patentlmm_args.max_eval_samples)
    grouped = training_args.train_sampling_strategy == "group_by_length"
    with training_args.main_process_first(desc="conversational rows"):  # one process writes the datasets cache
        train = to_conversational(
            train, desc_type, processor.tokenizer if grouped else None, processor.num_image_patches
        )
        evaluation = None if evaluation is None else to_conversational(evaluation, desc_type)
    return train, evaluation

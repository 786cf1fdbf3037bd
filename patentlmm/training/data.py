"""PatentDesc-355k splits as TRL's prompt/completion training rows (prompt, escaped description + end, figure, OCR)."""

from __future__ import annotations

import logging
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset, load_from_disk
from transformers import PreTrainedTokenizerBase
from trl import ScriptArguments, SFTConfig

from processing import PatentLMMProcessor, build_completion, build_prompt

from .arguments import PatentLMMArguments
from .rows import BadRowsError, without_bad_rows

__all__ = ["load_patentdesc", "to_prompt_completion", "training_rows"]

logger = logging.getLogger(__name__)


def load_patentdesc(name: str, config: str | None) -> DatasetDict:
    """PatentDesc-355k (`config` brief or detailed) from a dataset folder, a `save_to_disk` folder or a Hub id."""
    for folder in (Path(name) / (config or ""), Path(name)):
        if (folder / "dataset_dict.json").is_file():
            return load_from_disk(str(folder))
    return load_dataset(name, config)


def to_prompt_completion(
    dataset: Dataset,
    desc_type: str,
    prompt_format: str,
    end_token: str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    num_image_patches: int = 0,
) -> Dataset:
    """Adds TRL's `prompt` (`build_prompt(desc_type, prompt_format)`, as inference writes it) and `completion` (the
    escaped description, what the format writes after it, and `end_token`: `build_completion`) in place of
    `description`; the figure stays in `image` and the OCR columns stay as they are.

    With a `tokenizer`, also adds `length`, an estimate of each sample's sequence length (description tokens + OCR
    words + `num_image_patches`) for `train_sampling_strategy: group_by_length`. Only the text columns are
    rewritten: the images are not copied.
    """
    prompt = build_prompt(desc_type, prompt_format)
    ocr_column = "ocr_input_ids" if "ocr_input_ids" in dataset.column_names else "ocr_words"
    columns = ["description"] + ([ocr_column] if ocr_column in dataset.column_names else [])

    def convert(batch: dict[str, list]) -> dict[str, list]:
        descriptions = batch["description"]
        out = {
            "prompt": [prompt] * len(descriptions),
            "completion": [build_completion(text, prompt_format, end_token) for text in descriptions],
        }
        if tokenizer is not None:
            ocr = batch.get(ocr_column) or [[]] * len(descriptions)
            ids = tokenizer(descriptions, add_special_tokens=False)["input_ids"]
            out["length"] = [len(d) + len(o or []) + num_image_patches for d, o in zip(ids, ocr)]
        return out

    text = dataset.select_columns(columns).map(convert, batched=True, remove_columns=columns, desc="prompts")
    return concatenate_datasets([dataset.remove_columns(["description"]), text], axis=1)


def _first(dataset: Dataset, count: int | None) -> Dataset:
    return dataset if count is None else dataset.select(range(min(count, len(dataset))))


def training_rows(
    script_args: ScriptArguments,
    training_args: SFTConfig,
    patentlmm_args: PatentLMMArguments,
    processor: PatentLMMProcessor,
    desc_type: str,
) -> tuple[Dataset, Dataset | None, list[tuple[str, str, str]]]:
    """(training rows, evaluation rows or None when `eval_strategy` is "no", the skipped rows) in the prompt/completion
    form of `patentlmm_args.prompt_format`, each cut to its `max_*_samples`, then without the rows that cannot train
    (`rows.row_problem`): each is logged with its id and reason and listed as (split, image id, reason), or with
    `bad_rows` "refuse" all are raised at once as `BadRowsError`. The training rows carry `length` when batches are
    grouped by length."""
    splits = load_patentdesc(script_args.dataset_name, script_args.dataset_config)
    train = _first(splits[script_args.dataset_train_split], patentlmm_args.max_train_samples)
    evaluation = None
    if training_args.eval_strategy != "no":
        evaluation = _first(splits[script_args.dataset_test_split], patentlmm_args.max_eval_samples)
    grouped = training_args.train_sampling_strategy == "group_by_length"
    with training_args.main_process_first(desc="checked rows"):  # one process writes the datasets cache
        train, skipped = _checked(train, script_args.dataset_train_split, training_args, processor)
        if evaluation is not None:
            evaluation, more = _checked(evaluation, script_args.dataset_test_split, training_args, processor)
            skipped += more
    if skipped and patentlmm_args.bad_rows == "refuse":
        raise BadRowsError(skipped)
    if not len(train):
        raise BadRowsError(skipped, "no training row is left")
    text = {"desc_type": desc_type, "prompt_format": patentlmm_args.prompt_format}
    text["end_token"] = processor.tokenizer.eos_token
    lengths = {"tokenizer": processor.tokenizer if grouped else None, "num_image_patches": processor.num_image_patches}
    with training_args.main_process_first(desc="prompt/completion rows"):
        train = to_prompt_completion(train, **text, **lengths)
        evaluation = None if evaluation is None else to_prompt_completion(evaluation, **text)
    return train, evaluation, skipped


def _checked(
    rows: Dataset, split: str, training_args: SFTConfig, processor: PatentLMMProcessor
) -> tuple[Dataset, list[tuple[str, str, str]]]:
    kept, skipped = without_bad_rows(rows, split, processor.max_image_pixels, training_args.dataset_num_proc)
    if training_args.process_index == 0:  # the other processes found the same rows
        for _, image_id, reason in skipped:
            logger.warning("Skipped %s row %s: %s", split, image_id, reason)
    return kept, skipped

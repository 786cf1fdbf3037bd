"""`patentlmm describe`: brief or detailed descriptions of patent figures, from image files or a dataset split.

    patentlmm describe --model ./my-patentlmm --type brief fig1.png fig2.png          # tab-separated lines on stdout
    patentlmm describe --model ./my-patentlmm --type detailed --output preds.jsonl figures/*.png
    patentlmm describe --model ./my-patentlmm --dataset ./patentdesc-355k --split test --config brief \\
        --output preds.jsonl --batch-size 16
    patentlmm eval preds.jsonl --output metrics.json

Python: `describe("./my-patentlmm", dataset="./patentdesc-355k", split="test", output="preds.jsonl")`.

JSONL rows: `image_id`, `type`, `prediction`, `reference` (when the dataset has the description), and the figure's
`figure_numerals` / `figure_labels` (`patentlmm.evaluation.numerals`), which `patentlmm eval` scores predictions
against, as
read by the fidelity OCR (`--fidelity-ocr`, default `drawing`, which reads the numerals page OCR misses; its
`engine.key` is the row's `fidelity_ocr`). The model's own OCR (its processor's engine) is reused when it is the
same engine, else the fidelity engine reads the figure too.

How it runs:
1. figures come from files (id = file stem) or a `datasets` split (`load_dataset(DIR_OR_ID, config, split=...)`,
   rows with `image_id`, `image`, `description`, and as precomputed OCR when present: the official LayoutLMv3 token
   ids `ocr_input_ids` / `ocr_bbox` (the paper's OCR; preferred), else `ocr_words` / `ocr_boxes`);
2. a window of `batch_size * SORT_WINDOW_BATCHES` figures is OCR'd by the processor's `ocr_engine` (a model is
   served with the OCR it was trained on; one thread per core, for figures without OCR) and sorted by OCR token
   count, longest first, so that a batch's prompts (which hold `OCR tokens - 1 + 577` image features each) have
   similar lengths and little padding;
3. each batch is generated greedily (`do_sample=False`, `max_new_tokens` 512 by default) with the KV cache, image
   features encoded once on the prefill step; bf16 on GPUs that support it, else fp16, fp32 on CPU;
4. each batch's rows are appended to the JSONL and flushed (in input order within the batch), so an interruption
   loses at most one batch; a rerun skips the ids already written for that type (a torn last line is dropped).

`--prompt-format original_inference` runs the original inference script's setup (`finetuned_inference.py`): its
prompt (:122), figures resized without padding to a square (:127), at most 512 tokens *including* the prompt with
the figure counted once (:135, `generate(max_length=512)`), and with `--dtype auto` float32 (the model ran unconverted
in fp32, :83). With a converted official checkpoint and the official OCR, batch size 1 reproduces its tokens.

`--engine vllm` generates step 3's batches with vLLM (`patentlmm.inference.vllm_engine`; the `vllm` extra) instead of
`generate`; everything else is the same (figures, OCR, sorting, prompt ids, greedy decoding, rows, resume).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm.auto import tqdm

from modeling_patentlmm import PatentLMMForConditionalGeneration
from patentlmm.evaluation.numerals import extract_references
from patentlmm.inference import vllm_engine
from processing import PatentLMMProcessor, build_prompt, load_image, tokenize_ocr
from processing.constants import DESCRIPTION_TYPES
from processing.images import ImageInput
from processing.ocr import DEFAULT_OCR_ENGINE, OCR_ENGINES, OcrEngine, ocr_engine_from_dict, ocr_tokens_from_official
from processing.prompts import PROMPT_FORMATS, tokenize_prompt

__all__ = [
    "ENGINES",
    "SORT_WINDOW_BATCHES",
    "Figure",
    "add_arguments",
    "default_max_new_tokens",
    "describe",
    "describe_figures",
    "figures_from_dataset",
    "figures_from_files",
    "file_ids",
    "generate_batch",
    "iter_descriptions",
    "load_model_and_processor",
    "positive_int",
    "prepare_output",
    "run",
]

logger = logging.getLogger(__name__)

DEFAULT_CACHE = "static"
DEFAULT_MAX_NEW_TOKENS = 512
ORIGINAL_INFERENCE = "original_inference"  # the prompt format that also takes the original script's other settings
ORIGINAL_MAX_LENGTH = 512  # finetuned_inference.py:135, generate(max_length=512): prompt tokens included
ENGINES = ("transformers", "vllm")  # `generate` in this process, or vLLM (`patentlmm.inference.vllm_engine`)
SORT_WINDOW_BATCHES = 16  # figures are length-sorted within windows of this many batches (bounded memory)


@dataclass(frozen=True)
class Figure:
    """One figure to describe. `ocr` holds official LayoutLMv3 tokens (`{"input_ids", "bbox"}`, an `ocr.json` entry)
    and wins over `ocr_words`/`ocr_boxes` (0-1000), which the processor's OCR engine fills in when neither
    is given."""

    image_id: str
    image: ImageInput
    reference: str | None = None
    ocr_words: Sequence[str] | None = None
    ocr_boxes: Sequence[Sequence[int]] | None = None
    ocr: dict | None = None


def load_model_and_processor(
    model_name_or_path: str, device: str | None = None, dtype: str = "auto"
) -> tuple[PatentLMMForConditionalGeneration, PatentLMMProcessor]:
    """Loads a PatentLMM folder or Hub repo; `"auto"` = bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on
    CPU."""
    _check_model_folder(model_name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = PatentLMMForConditionalGeneration.from_pretrained(
        model_name_or_path, dtype=getattr(torch, _resolve_dtype(device, dtype))
    )
    processor = PatentLMMProcessor.from_pretrained(model_name_or_path)
    return model.to(device).eval(), processor


def _resolve_dtype(device: str, dtype: str) -> str:
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def _check_model_folder(model_name_or_path: str) -> None:
    """For a local folder, a one-line error naming what is missing or damaged (no `config.json`, no
    `ocr_tokenizer/`, weights that do not parse) before transformers reports it less clearly. Hub ids pass."""
    folder = Path(model_name_or_path)
    if not folder.is_dir():
        return
    from patentlmm.hub.files import check_weights  # the same check as before a push

    for name in ("config.json", "ocr_tokenizer"):
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder} is not a PatentLMM folder: it has no {name} (save_pretrained writes the model's config, "
                "the processor its OCR tokenizer in ocr_tokenizer/)."
            )
    if not check_weights(folder):
        raise FileNotFoundError(f"{folder} holds no *.safetensors weights.")


# ---------------------------------------------------------------------------------------------------- sources


def file_ids(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The id of each image file: its name without extension, or, where two files share that name (`a/fig.png`,
    `b/fig.png`), as many parent folders as make it unique (`a/fig`, `b/fig`). The same file given twice keeps one
    id."""
    files = [Path(path) for path in paths]
    ids = [file.stem for file in files]
    for stem in {i for i in ids if ids.count(i) > 1}:
        group = sorted({file.resolve() for file in files if file.stem == stem})
        if len(group) == 1:
            continue
        depth = 1
        while len({"/".join(file.parts[-depth - 1 : -1] + (stem,)) for file in group}) < len(group):
            depth += 1
        for index, file in enumerate(files):
            if file.stem == stem:
                ids[index] = "/".join(file.resolve().parts[-depth - 1 : -1] + (stem,))
    return ids


def figures_from_files(paths: Iterable[str | os.PathLike]) -> list[Figure]:
    """One `Figure` per image file (the same file once), with the ids of `file_ids`."""
    paths = list(paths)
    unique = dict(zip(file_ids(paths), map(str, paths)))
    return [Figure(image_id=image_id, image=path) for image_id, path in unique.items()]


def figures_from_dataset(dataset: Any, skip_ids: Iterable[str] = ()) -> Iterator[Figure]:
    """Figures of a `datasets.Dataset` split (PatentDesc-355k columns), lazily, without the rows of `skip_ids`."""
    skip = set(skip_ids)
    keep = [i for i, image_id in enumerate(dataset["image_id"]) if image_id not in skip]
    has_ocr = "ocr_words" in dataset.column_names and "ocr_boxes" in dataset.column_names
    has_official = "ocr_input_ids" in dataset.column_names and "ocr_bbox" in dataset.column_names
    for row in dataset.select(keep):
        official = has_official and row["ocr_input_ids"] is not None and row["ocr_bbox"] is not None
        yield Figure(
            image_id=row["image_id"],
            image=row["image"],
            reference=row.get("description"),
            ocr_words=row["ocr_words"] if has_ocr else None,
            ocr_boxes=row["ocr_boxes"] if has_ocr else None,
            ocr={"input_ids": row["ocr_input_ids"], "bbox": row["ocr_bbox"]} if official else None,
        )


def _load_split(dataset: str, split: str, config: str | None) -> Any:
    from datasets import load_dataset  # the `data` extra; only dataset runs need it

    return load_dataset(dataset, config, split=split)


# ---------------------------------------------------------------------------------------------------- output


def prepare_output(path: Path, desc_type: str) -> set[str]:
    """Ids already described (`type == desc_type`) in the JSONL at `path`; a torn last line (an interrupted write)
    is cut off first so that appending continues on a clean line."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if complete != data:
        path.write_bytes(complete)
    done = set()
    for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            row = json.loads(line) if line.strip() else {}
            if row and not (isinstance(row, dict) and isinstance(row.get("image_id"), str)):
                raise ValueError("not an object with a string image_id")
        except ValueError as error:
            logger.warning("%s line %d is damaged (%s): skipped; its figure is described again.", path, number, error)
            continue
        if row.get("type") == desc_type:
            done.add(row["image_id"])
    return done


def _write_rows(rows: list[dict], jsonl: TextIO | None, stream: TextIO | None) -> None:
    """Appends rows to the JSONL (flushed: a kill loses at most the batch being generated), or prints them."""
    if jsonl is not None:
        jsonl.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        jsonl.flush()
    elif stream is not None:
        stream.write("".join(f"{row['image_id']}\t{row['prediction']}\n" for row in rows))
        stream.flush()


# ---------------------------------------------------------------------------------------------------- generation


def _load_figures(processor: PatentLMMProcessor, figures: list[Figure]) -> list[Figure]:
    """The figures whose image loads (pixel cap, padding included, then a full decode); each one that does not is
    logged with its id and reason and left out, so one bad file never stops a run (a rerun tries it again)."""
    loaded = []
    for figure in figures:
        try:
            loaded.append(replace(figure, image=load_image(figure.image, processor.max_image_pixels)))
        except (OSError, ValueError, SyntaxError) as error:  # not an image, over the cap, damaged (PIL raises all)
            logger.warning("Skipped %s: %s", figure.image_id, str(error).splitlines()[0] or type(error).__name__)
    return loaded


def _with_ocr(processor: PatentLMMProcessor, figures: list[Figure]) -> list[Figure]:
    """Loads each figure's image (`_load_figures`) and runs the processor's OCR engine (in threads) for the figures
    without OCR."""
    loaded = _load_figures(processor, figures)
    if not loaded:
        return loaded
    todo = [i for i, f in enumerate(loaded) if f.ocr is None and (f.ocr_words is None or f.ocr_boxes is None)]
    workers = max(1, min(len(todo), processor.num_ocr_workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(processor.ocr, [loaded[i].image for i in todo]))
    for i, (words, boxes) in zip(todo, found):
        loaded[i] = replace(loaded[i], ocr_words=words, ocr_boxes=boxes)
    return loaded


def _num_ocr_tokens(processor: PatentLMMProcessor, figure: Figure) -> int:
    if figure.ocr is not None:
        ids, _ = ocr_tokens_from_official(figure.ocr, processor.max_ocr_tokens)
    else:
        ids, _ = tokenize_ocr(processor.ocr_tokenizer, figure.ocr_words, figure.ocr_boxes, processor.max_ocr_tokens)
    return len(ids)


def _ocr_text(processor: PatentLMMProcessor, figure: Figure) -> str:
    """The figure's OCR as text (for its reference numerals): the words, else the official tokens decoded."""
    if figure.ocr_words is not None:
        return " ".join(figure.ocr_words)
    ids, _ = ocr_tokens_from_official(figure.ocr, processor.max_ocr_tokens)
    return processor.ocr_tokenizer.decode(ids, skip_special_tokens=True)


def default_max_new_tokens(processor: PatentLMMProcessor, prompt: str, prompt_format: str) -> int:
    """512, or for `original_inference` 512 minus the prompt's tokens (the figure counted once), as the original's
    `generate(max_length=512)`."""
    if prompt_format != ORIGINAL_INFERENCE:
        return DEFAULT_MAX_NEW_TOKENS
    return ORIGINAL_MAX_LENGTH - len(tokenize_prompt(processor.tokenizer, prompt, processor.image_token))


@torch.inference_mode()
def generate_batch(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: Sequence[Figure],
    prompt: str,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    cache_implementation: str | None = DEFAULT_CACHE,
    pad_to_square: bool | None = None,
    no_repeat_ngram_size: int = 0,
) -> list[str]:
    """Greedy descriptions of `figures` (with OCR) in one left-padded batch.

    `no_repeat_ngram_size` > 0 forbids generating any token n-gram of that size twice (transformers'
    `NoRepeatNGramLogitsProcessor`): a guard against the loops that small models fall into under greedy decoding
    ("... with the actuator with the actuator ..."); 0 (default) is the paper's plain greedy decoding.

    `cache_implementation` is `generate`'s: "static" (default) preallocates the KV cache for the prompt plus
    `max_new_tokens` instead of growing it by a copy at every step (1.3-1.7x faster decoding on a CPU, the same
    tokens); None gives transformers' dynamic cache. `pad_to_square` overrides the processor's.
    """
    official = [f.ocr is not None for f in figures]
    inputs = processor(
        images=[f.image for f in figures],
        text=[prompt] * len(figures),
        ocr_words=[None if o else list(f.ocr_words) for f, o in zip(figures, official)],
        ocr_boxes=[None if o else [list(box) for box in f.ocr_boxes] for f, o in zip(figures, official)],
        ocr=[f.ocr for f in figures] if any(official) else None,
        padding_side="left",
        pad_to_square=pad_to_square,
    ).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    generated = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        no_repeat_ngram_size=no_repeat_ngram_size,
        cache_implementation=cache_implementation,
    )
    return processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :])  # (B, <= max_new_tokens) new tokens


def _windows(figures: Iterable[Figure], size: int) -> Iterator[list[Figure]]:
    window: list[Figure] = []
    for figure in figures:
        window.append(figure)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def iter_descriptions(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    figures: Iterable[Figure],
    desc_type: str = "brief",
    prompt_format: str = "vicuna_v1",
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    cache_implementation: str | None = DEFAULT_CACHE,
    fidelity_ocr: str | dict | OcrEngine = DEFAULT_OCR_ENGINE,
    no_repeat_ngram_size: int = 0,
) -> Iterator[list[dict]]:
    """Yields the JSONL rows of each generated batch (length-sorted batches; rows in input order within a batch).

    `max_new_tokens` None: `default_max_new_tokens`; `original_inference` also resizes figures without padding.
    `model` is a PatentLMM model, or a `vllm.LLM` serving one (`patentlmm.inference.vllm_engine.load_vllm`).
    """
    prompt = build_prompt(desc_type, prompt_format)
    if max_new_tokens is None:
        max_new_tokens = default_max_new_tokens(processor, prompt, prompt_format)
    pad_to_square = False if prompt_format == ORIGINAL_INFERENCE else None
    if isinstance(model, torch.nn.Module):
        generate = functools.partial(
            generate_batch,
            model,
            cache_implementation=cache_implementation,
            no_repeat_ngram_size=no_repeat_ngram_size,
        )
    elif no_repeat_ngram_size:
        raise ValueError("no_repeat_ngram_size is a transformers-engine option (vLLM has no n-gram guard).")
    else:
        generate = functools.partial(vllm_engine.generate_batch, model)
    fidelity_engine = ocr_engine_from_dict(fidelity_ocr)
    reuse = fidelity_engine.key == processor.ocr_engine.key
    for window in _windows(figures, batch_size * SORT_WINDOW_BATCHES):
        window = _with_ocr(processor, window)
        if not window:
            continue
        lengths = [_num_ocr_tokens(processor, f) for f in window]
        order = sorted(range(len(window)), key=lambda i: -lengths[i])  # longest first: memory peaks show up early
        for start in range(0, len(order), batch_size):
            batch = [window[i] for i in sorted(order[start : start + batch_size])]
            predictions = generate(processor, batch, prompt, max_new_tokens, pad_to_square=pad_to_square)
            rows = []
            for figure, prediction in zip(batch, predictions):
                text = _ocr_text(processor, figure) if reuse else " ".join(fidelity_engine(figure.image)[0])
                found = extract_references(text)
                row = {"image_id": figure.image_id, "type": desc_type, "prediction": prediction}
                if figure.reference is not None:
                    row["reference"] = figure.reference
                row["figure_numerals"] = sorted(found.numerals)
                row["figure_labels"] = list(found.labels)
                row["fidelity_ocr"] = fidelity_engine.key
                rows.append(row)
            yield rows


def describe_figures(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    images: Sequence[ImageInput],
    desc_type: str = "brief",
    prompt_format: str = "vicuna_v1",
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> list[str | None]:
    """Greedy descriptions of `images` (paths, bytes or PIL images), in the order given; None for an image that could
    not be loaded (logged with the reason)."""
    figures = [Figure(image_id=str(i), image=image) for i, image in enumerate(images)]
    by_id: dict[str, str] = {}
    with tqdm(total=len(figures), desc="describing", unit="figure", disable=not progress) as bar:
        for rows in iter_descriptions(model, processor, figures, desc_type, prompt_format, max_new_tokens, batch_size):
            by_id.update((row["image_id"], row["prediction"]) for row in rows)
            bar.update(len(rows))
    return [by_id.get(f.image_id) for f in figures]  # None: the image could not be loaded (logged)


def describe(
    model: str | PatentLMMForConditionalGeneration,
    images: Sequence[str | os.PathLike] | None = None,
    dataset: str | Any | None = None,
    split: str = "test",
    config: str | None = None,
    desc_type: str = "brief",
    output: str | os.PathLike | None = None,
    processor: PatentLMMProcessor | None = None,
    prompt_format: str = "vicuna_v1",
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    device: str | None = None,
    dtype: str = "auto",
    progress: bool = False,
    stream: TextIO | None = None,
    cache_implementation: str | None = DEFAULT_CACHE,
    engine: str = "transformers",
    vllm_args: dict | None = None,
    fidelity_ocr: str | dict | OcrEngine = DEFAULT_OCR_ENGINE,
    no_repeat_ngram_size: int = 0,
) -> list[dict]:
    """Describes image files or a dataset split; mirrors `patentlmm describe`.

    Args:
        model: a PatentLMM folder / Hub id, or a loaded model or `vllm.LLM` (then pass `processor`).
        images: image files (ids = file stems). Either `images` or `dataset`.
        dataset: a `datasets` folder / Hub id (loaded as `load_dataset(dataset, config or desc_type, split=split)`)
            or a loaded `datasets.Dataset`.
        output: JSONL to append to; ids already there (for `desc_type`) are skipped.
        prompt_format: `"vicuna_v1"` (default), `"plain"` or `"original_inference"` (the original script's setup, see
            the module docstring).
        max_new_tokens: None: 512, or for `original_inference` 512 minus the prompt's tokens.
        limit: describe at most this many new figures (the rest is left for a rerun).
        dtype: "auto" = bf16 on a GPU that supports it, else fp16 on GPUs, fp32 on CPU; fp32 for `original_inference`.
        stream: where rows go when `output` is None: tab-separated `image_id prediction` lines (None: nowhere).
        cache_implementation: `generate`'s KV cache, "static" (default) or None (dynamic); see `generate_batch`.
        engine: how a model path is loaded: "transformers" (default: `generate` in this process) or "vllm" (a
            `vllm.LLM` on vLLM's device, `vllm_args` passed to it; same figures, OCR, prompts, batches and rows).
        fidelity_ocr: the OCR engine whose numerals/labels the rows record for `patentlmm eval` (a name or
            `engine.to_dict()`; default `drawing`).
        no_repeat_ngram_size: > 0: no token n-gram of that size is generated twice (see `generate_batch`).

    Returns:
        The rows written by this call.
    """
    if (images is None) == (dataset is None):
        raise ValueError("Pass either images or dataset.")
    if desc_type not in DESCRIPTION_TYPES:
        raise ValueError(f"desc_type must be one of {DESCRIPTION_TYPES}, got {desc_type!r}.")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    for name, value in (("batch_size", batch_size), ("max_new_tokens", max_new_tokens or 1), ("limit", limit or 1)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    if isinstance(model, (str, os.PathLike)):
        if dtype == "auto" and prompt_format == ORIGINAL_INFERENCE:
            dtype = "float32"
        if engine == "vllm":
            vllm_device = "cuda" if torch.cuda.is_available() else "cpu"
            vllm_dtype = _resolve_dtype(vllm_device, dtype)
            model, processor = vllm_engine.load_vllm(str(model), vllm_dtype, **(vllm_args or {}))
        else:
            model, processor = load_model_and_processor(str(model), device, dtype)
    elif processor is None:
        raise ValueError("A loaded model needs its processor: pass processor=.")

    output = Path(output) if output is not None else None
    done = prepare_output(output, desc_type) if output is not None else set()
    if images is not None:
        figures: Iterable[Figure] = [f for f in figures_from_files(images) if f.image_id not in done]
        total = len(figures)
    else:
        split_data = dataset
        if isinstance(dataset, (str, os.PathLike)):
            split_data = _load_split(str(dataset), split, config or desc_type)
        total = sum(1 for image_id in split_data["image_id"] if image_id not in done)
        figures = figures_from_dataset(split_data, done)
    if limit is not None:
        total = min(total, limit)
        figures = itertools.islice(figures, limit)

    written: list[dict] = []
    handle = None
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        handle = output.open("a", encoding="utf-8")
    try:
        with tqdm(total=total, desc=f"describing ({desc_type})", unit="figure", disable=not progress) as bar:
            batches = iter_descriptions(
                model,
                processor,
                figures,
                desc_type,
                prompt_format,
                max_new_tokens,
                batch_size,
                cache_implementation,
                fidelity_ocr,
                no_repeat_ngram_size,
            )
            for rows in batches:
                _write_rows(rows, handle, stream)
                written.extend(rows)
                bar.update(len(rows))
    finally:
        if handle is not None:
            handle.close()
    return written


# ---------------------------------------------------------------------------------------------------- CLI


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1 (batch size, new tokens, limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="figure image files (or use --dataset)")
    parser.add_argument("--model", required=True, help="PatentLMM folder or Hub repo id")
    parser.add_argument("--dataset", default=None, help="datasets folder or Hub id (PatentDesc-355k columns)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--config", default=None, help="dataset config (default: --type)")
    parser.add_argument("--type", dest="desc_type", choices=DESCRIPTION_TYPES, default="brief")
    parser.add_argument(
        "--prompt-format",
        choices=PROMPT_FORMATS,
        default="vicuna_v1",
        help="vicuna_v1 (default; the training format), plain, or original_inference: the original inference "
        "script's prompt and setup (no pad to square, 512 tokens counting the prompt, float32 with --dtype auto)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=None,
        help="default: 512 (original_inference: 512 minus the prompt)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument(
        "--cache", choices=["static", "dynamic"], default=DEFAULT_CACHE, help="KV cache of generate (default: static)"
    )
    parser.add_argument("--limit", type=positive_int, default=None, help="describe at most this many new figures")
    parser.add_argument("--engine", choices=ENGINES, default="transformers", help="default: transformers")
    parser.add_argument(
        "--vllm-args",
        type=json.loads,
        default=None,
        help='--engine vllm: JSON keyword arguments of vllm.LLM, e.g. \'{"max_model_len": 2048}\'',
    )
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--output", type=Path, default=None, help="append JSONL here (resumable) instead of printing")
    parser.add_argument(
        "--fidelity-ocr",
        choices=sorted(OCR_ENGINES),
        default=DEFAULT_OCR_ENGINE,
        help="OCR engine whose figure numerals/labels `patentlmm eval` scores against (default: %(default)s)",
    )
    parser.add_argument(
        "--no-repeat-ngram-size", type=int, default=0, help="forbid repeating token n-grams of this size (0: off)"
    )


def run(args: argparse.Namespace) -> int:
    if bool(args.images) == bool(args.dataset):
        raise SystemExit("patentlmm describe: give image files or --dataset, not both (nor neither).")
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        raise SystemExit(f"patentlmm describe: no such image file(s): {', '.join(missing)}")
    rows = describe(
        args.model,
        images=args.images or None,
        dataset=args.dataset,
        split=args.split,
        config=args.config,
        desc_type=args.desc_type,
        output=args.output,
        prompt_format=args.prompt_format,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        limit=args.limit,
        device=args.device,
        dtype=args.dtype,
        progress=True,
        stream=sys.stdout,
        cache_implementation=None if args.cache == "dynamic" else args.cache,
        engine=args.engine,
        vllm_args=args.vllm_args,
        fidelity_ocr=args.fidelity_ocr,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
    )
    if args.output is not None:
        print(f"Wrote {len(rows)} descriptions to {args.output}", file=sys.stderr)
    return 0

"""Describing figures in length-sorted batches, appending each batch's rows to a resumable JSONL (docs/describe.md)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch
from tqdm.auto import tqdm

from modeling_patentlmm import PatentLMMForConditionalGeneration
from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS, DTYPES
from patentlmm.evaluation.numerals import extract_references
from patentlmm.inference import vllm_backend
from patentlmm.inference.figures import (
    Figure,
    figures_from_dataset,
    figures_from_files,
    load_split,
    ocr_text,
    prepare,
)
from patentlmm.inference.generation import (
    CACHES,
    DEFAULT_CACHE,
    ORIGINAL_INFERENCE,
    default_max_new_tokens,
    generate_batch,
)
from patentlmm.inference.grounding import DEFAULT_GROUNDING, GROUNDINGS, GroundingLogitsProcessor, grounding_for
from patentlmm.inference.inputs import (
    check_dataset_path,
    check_image_files,
    check_max_new_tokens,
    check_output_file,
    output_lock,
)
from patentlmm.inference.loading import dtype_reason, load_model_and_processor, resolve_dtype
from patentlmm.inference.precision import QUANTIZATIONS
from patentlmm_common.fields import at_least, check_options, option
from patentlmm_common.jsonl import JsonlAppender, cut_torn_line, iter_jsonl
from processing import PatentLMMProcessor, build_prompt
from processing.constants import DESCRIPTION_TYPES
from processing.ocr_base import OcrEngine
from processing.ocr_engines import DEFAULT_OCR_ENGINE, OCR_ENGINES, ocr_engine_from_dict
from processing.prompts import PROMPT_FORMATS

if TYPE_CHECKING:  # the `vllm` extra
    from vllm import LLM

__all__ = ["BACKENDS", "SORT_WINDOW_BATCHES", "DescribeOptions", "describe", "iter_descriptions", "prepare_output"]

logger = logging.getLogger(__name__)

BACKENDS = ("transformers", "vllm")  # `generate` in this process, or vLLM (`patentlmm.inference.vllm_backend`)
SORT_WINDOW_BATCHES = 16  # figures are length-sorted within windows of this many batches (bounded memory)


@dataclass
class DescribeOptions:
    """What `describe` reads (image files or a dataset split), how it generates, and where the rows go: the options
    of `patentlmm describe` but `--model` (docs/describe.md)."""

    images: list[Path] = option(positional=True, default_factory=list, help="figure image files (or use --dataset)")
    dataset: str | None = option(None, help="datasets folder or Hub id (PatentDesc-355k columns)")
    split: str = option("test", help="dataset split (default: %(default)s)")
    config: str | None = option(None, help="dataset config (default: --type)")
    desc_type: str = option(DESCRIPTION_TYPES[0], flag="--type", choices=DESCRIPTION_TYPES)
    prompt_format: str = option(
        PROMPT_FORMATS[0],
        choices=PROMPT_FORMATS,
        help="vicuna_v1 (default; the training format), plain, or original_inference: the original inference "
        f"script's prompt and setup (no pad to square, {DEFAULT_MAX_NEW_TOKENS} tokens counting the prompt, float32 "
        "with --dtype auto)",
    )
    max_new_tokens: int | None = option(
        None,
        type=at_least(1),
        help=f"default: {DEFAULT_MAX_NEW_TOKENS} (original_inference: {DEFAULT_MAX_NEW_TOKENS} minus the prompt)",
    )
    batch_size: int = option(8, type=at_least(1))
    cache: str = option(DEFAULT_CACHE, choices=CACHES, help="KV cache of generate (default: %(default)s)")
    limit: int | None = option(None, type=at_least(1), help="describe at most this many new figures")
    backend: str = option(
        BACKENDS[0],
        choices=BACKENDS,
        deprecated_flag="--engine",
        help="generation backend (default: %(default)s); --engine, its old name, is deprecated",
    )
    vllm_args: dict | None = option(
        None,
        type=json.loads,
        help="--backend vllm: JSON keyword arguments of vllm.LLM, e.g. '{\"max_model_len\": 2048}'",
    )
    device: str | None = option(None, help="default: cuda if available, else cpu")
    dtype: str = option(
        "auto",
        choices=("auto", *DTYPES),
        help="auto: bfloat16 on a GPU, or on a CPU with native bfloat16 (AMX or AVX512-BF16); float32 on other CPUs "
        "and for original_inference",
    )
    quantize: str = option(
        QUANTIZATIONS[0], choices=QUANTIZATIONS, help="int8: weight-only int8 decoder on a CPU (torchao)"
    )
    output: Path | None = option(None, help="append JSONL here (resumable) instead of printing")
    fidelity_ocr: str | dict | OcrEngine = option(
        DEFAULT_OCR_ENGINE,
        choices=sorted(OCR_ENGINES),
        help="OCR engine whose figure numerals/labels `patentlmm eval` scores against (default: %(default)s)",
    )
    no_repeat_ngram_size: int = option(0, help="forbid repeating token n-grams of this size (0: off)")
    grounding: str | None = option(
        None,
        choices=GROUNDINGS,
        help=f"cite only the reference numerals / figure labels the figure's OCR read (default: {DEFAULT_GROUNDING}; "
        "off for original_inference, which reproduces the original's tokens)",
    )
    grounding_bias: float = option(0.0, help="logit bonus for numerals the OCR read but not yet cited (0: none)")
    engine: str | None = None  # deprecated (one release): `backend`'s old name

    def __post_init__(self):
        if self.engine is not None:
            warnings.warn("DescribeOptions(engine=...) is deprecated: use backend=...", FutureWarning, stacklevel=3)
            self.backend, self.engine = self.engine, None
        if self.grounding is None:
            self.grounding = "off" if self.prompt_format == ORIGINAL_INFERENCE else DEFAULT_GROUNDING
        self.images = [Path(path) for path in self.images]
        self.output = Path(self.output) if self.output is not None else None
        check_options(self)


# ---------------------------------------------------------------------------------------------------- output


def prepare_output(path: Path, desc_type: str) -> set[str]:
    """Ids already described (`type == desc_type`) in the JSONL at `path`; a torn last line (an interrupted write)
    is cut off first so that appending continues on a clean line. An id written more than once (two writers before
    the output lock, a copy appended by hand) counts once and is reported."""
    cut_torn_line(path)
    seen: Counter[str] = Counter()
    for number, row in iter_jsonl(path):
        if not isinstance(row, ValueError) and not (isinstance(row, dict) and isinstance(row.get("image_id"), str)):
            row = ValueError("not an object with a string image_id")
        if isinstance(row, ValueError):
            logger.warning("%s line %d is damaged (%s): skipped; its figure is described again.", path, number, row)
            continue
        if row.get("type") == desc_type:
            seen[row["image_id"]] += 1
    duplicates = sorted(image_id for image_id, count in seen.items() if count > 1)
    if duplicates:
        logger.warning("%s holds %d %s ids more than once (%s): each counts once.", path, len(duplicates), desc_type,
                       ", ".join(duplicates[:5]) + (", ..." if len(duplicates) > 5 else ""))  # fmt: skip
    return set(seen)


def _write_rows(rows: list[dict], jsonl: JsonlAppender | None, stream: TextIO | None) -> None:
    """Appends rows to the JSONL (flushed: a kill loses at most the batch being generated), or prints them."""
    if jsonl is not None:
        jsonl.write_many(rows)
    elif stream is not None:
        stream.write("".join(f"{row['image_id']}\t{row['prediction']}\n" for row in rows))
        stream.flush()


# ---------------------------------------------------------------------------------------------------- the loop


def _windows(figures: Iterable[Figure], size: int) -> Iterator[list[Figure]]:
    """`figures` in consecutive lists of `size` (the last one shorter)."""
    iterator = iter(figures)
    while window := list(itertools.islice(iterator, size)):
        yield window


def _batch_generator(model: Any, options: DescribeOptions) -> Callable[..., list[str]]:
    """`generate(processor, figures, prompt, max_new_tokens, pad_to_square=...)` for `model`: a PatentLMM model
    (`generate_batch`) or a `vllm.LLM` (`vllm_backend.generate_batch`)."""
    if isinstance(model, torch.nn.Module):
        cache = None if options.cache == "dynamic" else options.cache
        return functools.partial(
            generate_batch, model, cache_implementation=cache, no_repeat_ngram_size=options.no_repeat_ngram_size
        )
    if options.no_repeat_ngram_size:
        raise ValueError("no_repeat_ngram_size is a transformers-backend option (vLLM has no n-gram guard).")
    grounded = options.grounding != "off" or bool(options.grounding_bias)
    grounding = {"grounding": options.grounding, "bias": options.grounding_bias} if grounded else None
    return functools.partial(vllm_backend.generate_batch, model, grounding=grounding)


def iter_descriptions(
    model: PatentLMMForConditionalGeneration | LLM,
    processor: PatentLMMProcessor,
    figures: Iterable[Figure],
    options: DescribeOptions | None = None,
) -> Iterator[list[dict]]:
    """Yields the JSONL rows of each generated batch (length-sorted batches; rows in input order within a batch).

    `model` is a PatentLMM model, or a `vllm.LLM` serving one (`patentlmm.inference.vllm_backend.load_vllm`); of
    `options` (default `DescribeOptions()`), the sources, `output`, `backend`, `device` and `dtype` are `describe`'s.
    `max_new_tokens` None: `default_max_new_tokens`; `original_inference` also resizes figures without padding.
    """
    options = options or DescribeOptions()
    prompt = build_prompt(options.desc_type, options.prompt_format)
    max_new_tokens = options.max_new_tokens or default_max_new_tokens(processor, prompt, options.prompt_format)
    if isinstance(model, torch.nn.Module):
        positions = model.config.get_text_config().max_position_embeddings
    else:  # a vllm.LLM: the sequence length its engine was built for
        positions = model.model_config.max_model_len
    check_max_new_tokens(positions, processor, prompt, max_new_tokens)
    pad_to_square = False if options.prompt_format == ORIGINAL_INFERENCE else None
    generate = _batch_generator(model, options)
    fidelity_engine = ocr_engine_from_dict(options.fidelity_ocr)
    reuse = fidelity_engine.key == processor.ocr_engine.key
    for window in _windows(figures, options.batch_size * SORT_WINDOW_BATCHES):
        window = prepare(processor, window)
        # longest OCR first: memory peaks show up early
        order = sorted(range(len(window)), key=lambda i: -len(window[i][1].ocr_input_ids))
        for start in range(0, len(order), options.batch_size):
            batch = [window[i] for i in sorted(order[start : start + options.batch_size])]
            texts = [ocr_text(processor, prepared) for _, prepared in batch]
            grounding = _grounding(model, processor, texts, options, max_new_tokens)
            extra = {"logits_processor": [grounding]} if grounding else {}
            predictions = generate(
                processor,
                [prepared for _, prepared in batch],
                prompt,
                max_new_tokens,
                pad_to_square=pad_to_square,
                **extra,
            )
            rows = []
            for index, ((figure, prepared), prediction) in enumerate(zip(batch, predictions)):
                text = texts[index] if reuse else " ".join(fidelity_engine(prepared.image)[0])
                found = extract_references(text)
                row = {"image_id": figure.image_id, "type": options.desc_type, "prediction": prediction}
                if figure.reference is not None:
                    row["reference"] = figure.reference
                row["figure_numerals"] = sorted(found.numerals)
                row["figure_labels"] = list(found.labels)
                row["fidelity_ocr"] = fidelity_engine.key
                row.update(_grounding_row(grounding, index, texts[index], options))
                rows.append(row)
            yield rows


def _grounding(
    model: Any, processor: PatentLMMProcessor, texts: list[str], options: DescribeOptions, max_new_tokens: int
) -> GroundingLogitsProcessor | None:
    """The batch's grounding (one row per OCR text), or None when `options` ask for none or `model` is a `vllm.LLM`
    (its engine grounds each request itself: `vllm_grounding`)."""
    if not isinstance(model, torch.nn.Module):
        return None
    return grounding_for(model, processor.tokenizer, texts, options.grounding, max_new_tokens, options.grounding_bias)


def _grounding_row(grounding: GroundingLogitsProcessor | None, index: int, text: str, options: DescribeOptions) -> dict:
    """What a row records of its grounding; vLLM's engine keeps which constraints fired to itself."""
    if grounding is not None:
        return grounding.reports[index]
    if options.grounding == "off" and not options.grounding_bias:
        return {"grounding": "off"}
    if not text.strip():
        return {"grounding": "off", "grounding_note": "no OCR words: unconstrained"}
    return {"grounding": options.grounding, "grounding_note": "vLLM: constraints fired are not reported"}


def _load(model_name_or_path: str, options: DescribeOptions) -> tuple[Any, PatentLMMProcessor]:
    """The model (or `vllm.LLM`, `--backend vllm`) and processor of a folder or Hub id; `--dtype auto` is float32 for
    `original_inference` (the original ran unconverted in fp32)."""
    dtype = options.dtype
    if dtype == "auto" and options.prompt_format == ORIGINAL_INFERENCE:
        dtype = "float32"
    if options.backend == "vllm":
        if options.quantize != "none":
            raise ValueError("--quantize int8 is supported by the transformers backend only, not --backend vllm.")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        vllm_dtype = dtype if dtype != "auto" or device == "cuda" else "float32"  # vLLM's CPU runs as before
        vllm_args = options.vllm_args or {}
        grounding = options.grounding != "off" or bool(options.grounding_bias)
        return vllm_backend.load_vllm(
            model_name_or_path, resolve_dtype(device, vllm_dtype), grounding=grounding, **vllm_args
        )
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    logger.info(
        "describe: %s on %s, dtype %s, quantize %s",
        options.backend,
        device,
        dtype_reason(device, dtype),
        options.quantize,
    )
    return load_model_and_processor(model_name_or_path, device, dtype, options.quantize)


def _pending_figures(options: DescribeOptions, done: set[str]) -> tuple[Iterable[Figure], int]:
    """The figures of `options`' images or dataset split not in `done`, at most `options.limit`, and their count."""
    if options.images:
        figures: Iterable[Figure] = [f for f in figures_from_files(options.images) if f.image_id not in done]
        total = len(figures)
    else:
        split = load_split(options.dataset, options.split, options.config or options.desc_type)
        total = sum(1 for image_id in split["image_id"] if image_id not in done)
        figures = figures_from_dataset(split, done)
    if options.limit is not None:
        return itertools.islice(figures, options.limit), min(total, options.limit)
    return figures, total


def describe(
    model: str | os.PathLike | PatentLMMForConditionalGeneration | LLM,
    options: DescribeOptions,
    processor: PatentLMMProcessor | None = None,
    stream: TextIO | None = None,
    progress: bool = False,
) -> list[dict]:
    """Describes `options.images` or the dataset split `options.dataset`; mirrors `patentlmm describe`.

    Args:
        model: a PatentLMM folder / Hub id (loaded by `options.backend`), or a loaded model or `vllm.LLM` (then pass
            its `processor`).
        options: the sources, generation settings and output; ids already in `options.output` (for its type) are
            skipped, so a rerun resumes.
        stream: where rows go when `options.output` is None: tab-separated `image_id prediction` lines (None:
            nowhere).
        progress: show a progress bar.

    Returns:
        The rows written by this call.

    Raises:
        InputError: an image path that is not a regular file (missing, a folder, a FIFO: checked by `stat`, nothing
            is opened), a local dataset path or an output that is neither, or `max_new_tokens` beyond what the
            model's decoder can hold.
        AlreadyRunningError: another `describe` is writing `options.output` (one writer per output).
    """
    if bool(options.images) == (options.dataset is not None):
        raise ValueError("Pass either images or dataset.")
    if not isinstance(model, (str, os.PathLike)) and processor is None:
        raise ValueError("A loaded model needs its processor: pass processor=.")
    if not isinstance(model, (str, os.PathLike)) and options.quantize != "none":
        raise ValueError("quantize applies when describe loads the model (a loaded one: precision.quantize_decoder).")
    check_image_files(options.images)
    if options.dataset is not None:
        check_dataset_path(options.dataset)
    if options.output is not None:
        check_output_file(options.output)
    with output_lock(options.output) if options.output is not None else contextlib.nullcontext():
        if isinstance(model, (str, os.PathLike)):
            model, processor = _load(str(model), options)
        return _describe_pending(model, processor, options, stream, progress)


def _describe_pending(
    model: Any, processor: PatentLMMProcessor, options: DescribeOptions, stream: TextIO | None, progress: bool
) -> list[dict]:
    """`describe` once its inputs are checked, the output locked and the model loaded: the figures not yet in
    `options.output`, their rows appended there (or to `stream`); returns the rows written."""
    output = options.output
    figures, total = _pending_figures(options, prepare_output(output, options.desc_type) if output else set())
    written: list[dict] = []
    handle = JsonlAppender(output) if output is not None else None
    try:
        with tqdm(total=total, desc=f"describing ({options.desc_type})", unit="figure", disable=not progress) as bar:
            for rows in iter_descriptions(model, processor, figures, options):
                _write_rows(rows, handle, stream)
                written.extend(rows)
                bar.update(len(rows))
    finally:
        if handle is not None:
            handle.close()
    return written

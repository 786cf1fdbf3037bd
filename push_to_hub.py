"""Publish a PatentLMM model folder (trained or converted) or the built `patentdesc-355k/` dataset to a Hub.

    python push_to_hub.py model outputs/stage2 --repo-id you/patentlmm-brief --metrics metrics.json --private
    python push_to_hub.py model outputs/stage2 --repo-id you/patentlmm-brief --dry-run --staging-dir hub-folder
    python push_to_hub.py dataset DATASET/patentdesc-355k --repo-id you/patentdesc-355k
    patentlmm push ...   (the same arguments)

The model folder is staged first: only the files a model repo needs are copied (`MODEL_REPO_FILES`: safetensors
weights, configs, processor and tokenizer files, `ocr_tokenizer/`, the remote code); everything else (`.env`,
`wandb/`, `runs/`, checkpoints, `trainer_state.json`, pickles, ...) is left out and listed. Weights that do not parse
are refused. The staged folder is completed with the remote-code files and `auto_map` that let
`AutoModelForImageTextToText` / `AutoModelForVision2Seq` load it with `trust_remote_code=True`, a generation config,
the widget's example figures and a model card (`huggingface_hub.ModelCard`).
The token comes from `HF_TOKEN` or `huggingface-cli login` (never printed); `HF_ENDPOINT` selects another Hub.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from safetensors import safe_open
from transformers import GenerationConfig
from transformers.dynamic_module_utils import get_relative_import_files

from patentlmm.assets import FIGURES

__all__ = [
    "MODEL_REPO_FILES",
    "add_arguments",
    "build_model_card",
    "check_safetensors",
    "check_weights",
    "push_dataset",
    "push_model",
    "run",
    "select_model_files",
    "stage_model_folder",
]

logger = logging.getLogger(__name__)

DEFAULT_WIDGET_DIR = FIGURES  # the bundled real USPTO figures
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
REQUIRED_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
# The allow-list of a model folder's files that are published (paths relative to the folder; the remote code's own
# file names are added by `select_model_files`). A LoRA adapter kept beside the weights (`--keep-adapter`) is too.
MODEL_REPO_FILES = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "adapter_config.json",
    "additional_chat_templates/*.jinja",  # the processor's named chat templates (plain, original_inference)
    *_TOKENIZER_FILES,
    *(f"ocr_tokenizer/{name}" for name in _TOKENIZER_FILES),
)
# Names of `patentlmm eval`'s metrics, as shown in the paper's Table 2.
METRIC_NAMES = {
    "bleu2": "BLEU-2",
    "bleu4": "BLEU-4",
    "avg_bleu": "Average BLEU",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "meteor": "METEOR",
}
CITATION = """@inproceedings{shukla2025patentlmm,
  title     = {PatentLMM: Large Multimodal Model for Generating Descriptions for Patent Figures},
  author    = {Shukla, Shreya and Sharma, Nakul and Gupta, Manish and Mishra, Anand},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2025}
}"""

CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

PatentLMM writes brief and detailed descriptions of patent figures ([arXiv 2501.15074](https://arxiv.org/abs/2501.15074)):
a PatentMME (LayoutLMv3) encoder reads the figure together with its Tesseract OCR, a projector maps its features into
a LLaMA decoder, which writes the description. This checkpoint was packaged with `patentlmm`, the Hugging Face-native
implementation, whose code it carries (`trust_remote_code=True`).

## Use

Tesseract OCR must be installed (`apt-get install tesseract-ocr`).

```python
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor  # transformers 5.x

model = AutoModelForImageTextToText.from_pretrained("{{ repo_id }}", trust_remote_code=True, dtype=torch.bfloat16)
processor = AutoProcessor.from_pretrained("{{ repo_id }}", trust_remote_code=True)
messages = [{"role": "user", "content": [{"type": "image"},
             {"type": "text", "text": "Write a {{ desc_type }} description for this patent image."}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=["figure.png"], text=[prompt]).to(model.device)
inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
output = model.generate(**inputs, max_new_tokens=512, do_sample=False)
print(processor.batch_decode(output[:, inputs["input_ids"].shape[1]:])[0])
```

On transformers 4.x, load the model with
`AutoModelForVision2Seq.from_pretrained("{{ repo_id }}", trust_remote_code=True)`.

{% if results_table %}## Evaluation

{{ results_table }}
{% endif %}
## Citation

```bibtex
{{ citation }}
```
"""


# ----------------------------------------------------------------------------------------------- model folder


def check_safetensors(path: str | os.PathLike) -> None:
    """Raises `ValueError` naming `path` when it is not a complete safetensors file (a malformed or oversized header,
    invalid JSON, tensors outside the file, a truncated file). Reads the header only, no tensor."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as error:  # SafetensorError, OSError (e.g. EINVAL from mmap of a short file)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a valid safetensors file: {reason}.") from error


def check_weights(folder: str | os.PathLike) -> list[Path]:
    """Checks every `*.safetensors` file of `folder` and that each shard named by a `*.safetensors.index.json` exists;
    returns the weight files. Raises `ValueError` (bad file) or `FileNotFoundError` (missing shard)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    for index in sorted(folder.glob("*.safetensors.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, AttributeError) as error:
            raise ValueError(f"{index} is not a safetensors index (JSON with a weight_map): {error}") from error
        missing = sorted(name for name in shards if not (folder / name).is_file())
        if missing:
            raise FileNotFoundError(f"{index} names shard(s) missing from {folder}: {', '.join(missing[:5])}")
    for path in files:
        check_safetensors(path)
    return files


def _remote_code_files() -> list[Path]:
    """The source files of the model and the processor, each with the files it imports relatively."""
    import modeling_patentlmm.modeling_patentlmm as modeling
    import processing.processing_patentlmm as processing

    sources = (modeling.__file__, processing.__file__)
    return [Path(path) for source in sources for path in [source, *get_relative_import_files(source)]]


def select_model_files(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(files to publish, entries left out) of a model folder, as sorted relative paths; a left-out folder is named
    once, with a trailing `/`. Published: the `MODEL_REPO_FILES` patterns and the remote code's file names."""
    folder = Path(folder)
    allowed = (*MODEL_REPO_FILES, *(path.name for path in _remote_code_files()))
    published, left_out = [], set()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        depth = relative.count("/")  # fnmatch's * crosses "/": checkpoint-5/model.safetensors must not match
        if path.is_file() and any(fnmatch(relative, p) and p.count("/") == depth for p in allowed):
            published.append(relative)
        elif path.is_file() or path.is_symlink():
            top = relative.split("/")[0]
            left_out.add(top + "/" if (folder / top).is_dir() else top)
    return published, sorted(left_out)


def stage_model_folder(
    folder: str | os.PathLike,
    staging_dir: str | os.PathLike,
    widget_images: Sequence[str | os.PathLike] = (),
) -> Path:
    """Copies the files of `folder` that a model repo needs (`select_model_files`) to `staging_dir`, logs what was
    left out, and completes the copy: remote code, `auto_map`, generation config, widget images.

    Raises `FileNotFoundError` for missing model/processor files and `ValueError` for weights that are pickles only
    or do not parse.
    """
    source, staging = Path(folder), Path(staging_dir)
    missing = [name for name in REQUIRED_FILES if not (source / name).is_file()]
    if not list(source.glob("*.safetensors")):
        pickles = sorted(p.name for p in source.glob("*") if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(
                f"{source} holds pickled files ({', '.join(pickles)}) and no safetensors weights: only safetensors "
                "are published (load the weights with torch.load(weights_only=True) and save them as safetensors)."
            )
        missing.append("*.safetensors")
    if missing:
        raise FileNotFoundError(f"{source} is not a PatentLMM model + processor folder: missing {', '.join(missing)}.")
    check_weights(source)
    published, left_out = select_model_files(source)
    if left_out:
        logger.warning("Left out of the model repo (not model files): %s", ", ".join(left_out))
    for relative in published:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, staging / relative)
    _ensure_remote_code(staging)
    if not (staging / "generation_config.json").is_file():
        config = _read_json(staging / "config.json")
        special = {key: config.get(key) for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
        GenerationConfig(do_sample=False, max_new_tokens=512, **special).save_pretrained(staging)
    if widget_images:
        (staging / "examples").mkdir(exist_ok=True)
        for image in widget_images:
            shutil.copy(image, staging / "examples" / Path(image).name)
    return staging


def _ensure_remote_code(staging: Path) -> None:
    """Adds the model's and processor's source files (each with the files it imports relatively, flat) where the
    folder lacks them, and the `auto_map` entries that point the Auto classes at them."""
    import modeling_patentlmm.modeling_patentlmm as modeling

    for path in _remote_code_files():
        if not (staging / path.name).is_file():
            shutil.copy(path, staging / path.name)
    _update_json(staging / "config.json", auto_map=dict(modeling.AUTO_MAP))
    _update_json(
        staging / "processor_config.json", auto_map={"AutoProcessor": "processing_patentlmm.PatentLMMProcessor"}
    )


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a JSON {type(content).__name__}, not an object.")
    return content


def _update_json(path: Path, **values) -> None:
    content = _read_json(path)
    content.update(values)
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _results_table(metrics: dict[str, float]) -> str:
    header = "| " + " | ".join(METRIC_NAMES[k] for k in METRIC_NAMES if k in metrics) + " |"
    rule = "|" + "---|" * sum(k in metrics for k in METRIC_NAMES)
    row = "| " + " | ".join(f"{metrics[k]:.2f}" for k in METRIC_NAMES if k in metrics) + " |"
    return "\n".join([header, rule, row])


def build_model_card(
    repo_id: str,
    desc_type: str = "brief",
    metrics: dict[str, float] | None = None,
    base_model: str | None = None,
    dataset_id: str = "patentdesc-355k",
    widget_images: Sequence[str | os.PathLike] = (),
    license: str = "apache-2.0",
) -> ModelCard:
    """A model card with YAML metadata (pipeline tag, widget, model-index from `metrics`), usage and citation."""
    eval_results = [
        EvalResult(
            task_type="image-text-to-text",
            dataset_type=dataset_id,
            dataset_name=f"PatentDesc-355k ({desc_type})",
            dataset_split="test",
            metric_type=key,
            metric_name=METRIC_NAMES[key],
            metric_value=float(value),
        )
        for key, value in (metrics or {}).items()
        if key in METRIC_NAMES
    ]
    widget = [
        {
            "src": f"examples/{Path(image).name}",
            "text": f"Write a {desc_type} description for this patent image.",
            "example_title": Path(image).stem,
        }
        for image in widget_images
    ]
    card_data = ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["patentlmm", "patents", "layoutlmv3", "llava", "custom_code"],
        datasets=[dataset_id],
        base_model=base_model,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results or None,
        widget=widget or None,
    )
    return ModelCard.from_template(
        card_data,
        template_str=CARD_TEMPLATE,
        title=repo_id.split("/")[-1],
        repo_id=repo_id,
        desc_type=desc_type,
        results_table=_results_table(metrics) if metrics else "",
        citation=CITATION,
    )


def push_model(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    desc_type: str = "brief",
    metrics_path: str | os.PathLike | None = None,
    base_model: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload PatentLMM",
    widget_images: Sequence[str | os.PathLike] | None = None,
    staging_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    token: str | None = None,
) -> str:
    """Stages `folder` with its card and uploads it to `repo_id`; returns the commit URL (or the staged folder when
    `dry_run`)."""
    if widget_images is None:
        widget_images = sorted(DEFAULT_WIDGET_DIR.glob("*.png"))[:3] if DEFAULT_WIDGET_DIR.is_dir() else []
    # `patentlmm eval --output` writes {type: {"metrics": {...}, ...}}.
    metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))[desc_type]["metrics"] if metrics_path else None
    with tempfile.TemporaryDirectory() as temporary:
        staging = stage_model_folder(folder, staging_dir or temporary, widget_images)
        card = build_model_card(repo_id, desc_type, metrics, base_model, widget_images=widget_images)
        card.save(staging / "README.md")
        if dry_run:
            if staging_dir is None:
                raise ValueError("--dry-run needs --staging-dir: the folder that would be uploaded is written there.")
            return str(staging)
        return _upload(staging, repo_id, "model", private, revision, commit_message, token)


def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload PatentDesc-355k",
    token: str | None = None,
) -> str:
    """Uploads a built `patentdesc-355k/` folder (Parquet shards + dataset card) as a dataset repo."""
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} has no README.md dataset card: build it with `patentlmm dataset build`.")
    return _upload(folder, repo_id, "dataset", private, revision, commit_message, token)


def _upload(
    folder: Path, repo_id: str, repo_type: str, private: bool, revision: str | None, message: str, token: str | None
) -> str:
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if revision is not None and revision != "main":
        api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True)
    commit = api.upload_folder(
        folder_path=folder, repo_id=repo_id, repo_type=repo_type, revision=revision, commit_message=message
    )
    logger.info("Uploaded %s to %s (%s)", folder, repo_id, repo_type)
    return commit.commit_url


# ----------------------------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["model", "dataset"], help="push a model folder or a built dataset folder")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repo-id", required=True, help="owner/name on the Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="branch to push to (created when missing); default main")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--type", dest="desc_type", choices=["brief", "detailed"], default="brief")
    parser.add_argument("--metrics", type=Path, default=None, help="JSON written by `patentlmm eval`")
    parser.add_argument("--base-model", default=None, help="Hub id of the base LLM, for the card")
    parser.add_argument("--widget-image", action="append", type=Path, default=None, help="default: bundled figures")
    parser.add_argument("--staging-dir", type=Path, default=None, help="where the model folder is completed")
    parser.add_argument("--dry-run", action="store_true", help="write the staged folder only; upload nothing")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.what == "dataset":
        url = push_dataset(
            args.folder,
            args.repo_id,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message or "Upload PatentDesc-355k",
        )
    else:
        url = push_model(
            args.folder,
            args.repo_id,
            desc_type=args.desc_type,
            metrics_path=args.metrics,
            base_model=args.base_model,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message or "Upload PatentLMM",
            widget_images=args.widget_image,
            staging_dir=args.staging_dir,
            dry_run=args.dry_run,
        )
    print(url)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="push_to_hub.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

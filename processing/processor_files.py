"""The files a saved `PatentLMMProcessor` adds to its tokenizers': settings, chat templates, portable configs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from .prompts import DEFAULT_PROMPT_FORMAT

__all__ = [
    "ADDITIONAL_CHAT_TEMPLATES_DIR",
    "CHAT_TEMPLATE_FILE",
    "OCR_TOKENIZER_SUBFOLDER",
    "PROCESSOR_CONFIG_NAME",
    "make_tokenizer_config_portable",
    "read_chat_templates",
    "read_processor_folder",
    "start_a_word_after_each_special_token",
    "write_chat_templates",
    "write_json",
]

PROCESSOR_CONFIG_NAME = "processor_config.json"
OCR_TOKENIZER_SUBFOLDER = "ocr_tokenizer"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
ADDITIONAL_CHAT_TEMPLATES_DIR = "additional_chat_templates"
# Keys `transformers.pipeline` passes to every component's `from_pretrained` (loader and model settings), ignored.
_PIPELINE_KWARGS = ("_from_pipeline", "_commit_hash", "code_revision", "device_map", "dtype", "torch_dtype")
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


_DEFAULT = "default"  # transformers' name of the template saved as `chat_template.jinja`: the default prompt format


def _template_file(name: str) -> str:
    """Where the chat template `name` (as `processor_config.json` lists it) is saved, relative to the processor
    folder (transformers' layout)."""
    return CHAT_TEMPLATE_FILE if name == _DEFAULT else f"{ADDITIONAL_CHAT_TEMPLATES_DIR}/{name}.jinja"


def _write_text(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (a reader sees the old file or the new one, never half of it)."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)


def write_json(path: str, data: dict[str, Any], **dump_kwargs: Any) -> None:
    """Writes `data` as indented JSON with a final newline, atomically."""
    _write_text(path, json.dumps(data, indent=2, **dump_kwargs) + "\n")


def write_chat_templates(folder: str, templates: dict[str, str]) -> list[str]:
    """Writes each template (by prompt format) to `chat_template.jinja` (the default format, listed as
    `"default"`) or `additional_chat_templates/<format>.jinja`; returns the names `processor_config.json` lists."""
    names = []
    for prompt_format, template in templates.items():
        name = _DEFAULT if prompt_format == DEFAULT_PROMPT_FORMAT else prompt_format
        path = os.path.join(folder, _template_file(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_text(path, template)
        names.append(name)
    return names


def read_chat_templates(fetch: Callable[[str], str], names: list[str]) -> dict[str, str]:
    """The templates `names` (as `processor_config.json` lists them) of a processor folder, by prompt format;
    `fetch(relative path)` returns a local path (Hub or folder)."""
    templates = {}
    for name in names:
        with open(fetch(_template_file(name)), encoding="utf-8") as handle:
            templates[DEFAULT_PROMPT_FORMAT if name == _DEFAULT else name] = handle.read()
    return templates


def make_tokenizer_config_portable(folder: str) -> None:
    """transformers 5 saves `extra_special_tokens` as a list, which 4.x cannot read: store it under the name both
    majors understand, `additional_special_tokens`."""
    path = os.path.join(folder, "tokenizer_config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    extra = config.get("extra_special_tokens")
    if isinstance(extra, list):
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
        write_json(path, config, ensure_ascii=False)


def start_a_word_after_each_special_token(folder: str) -> None:
    """Saves a SentencePiece decoder tokenizer (Metaspace pre-tokenizer, LLaMA's) so that it starts a word after
    every special token as well as at the start of the text: Metaspace `prepend_scheme="always"` in `tokenizer.json`
    and `legacy: true` in `tokenizer_config.json` (transformers 5 rebuilds LLaMA's pre-tokenizer from that flag, and
    does not save it; 4.x reads `tokenizer.json`).

    A text without special tokens tokenises as before, and a whole prompt then tokenises exactly as
    `prompts.tokenize_prompt` (the original's rule) does, the `▁` after `<image>` included, which `legacy=False`
    (`"first"`) drops: vLLM's chat, which tokenises the rendered chat template whole, gets the processor's ids.
    """
    from tokenizers import Tokenizer, pre_tokenizers

    tokenizer_file = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(tokenizer_file):
        return
    backend = Tokenizer.from_file(tokenizer_file)
    metaspace = backend.pre_tokenizer
    if not isinstance(metaspace, pre_tokenizers.Metaspace) or metaspace.prepend_scheme == "never":
        return
    if metaspace.prepend_scheme != "always":
        metaspace.prepend_scheme = "always"
        backend.pre_tokenizer = metaspace
        backend.save(tokenizer_file)
    config_file = os.path.join(folder, "tokenizer_config.json")
    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    config["legacy"] = True
    write_json(config_file, config, ensure_ascii=False)


def read_processor_folder(source: str | os.PathLike, attributes: list[str], **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments that rebuild the processor saved at `source` (a folder or a Hub repo id): its
    components (`attributes`: image processor, decoder tokenizer, OCR tokenizer, loaded unless given in `kwargs`),
    chat templates and settings (`processor_config.json`, overridden by the other `kwargs`). Hub arguments
    (`revision`, `subfolder`, ...) apply to every file; the loader settings `transformers.pipeline` passes are
    ignored."""
    from transformers import AutoImageProcessor, AutoTokenizer
    from transformers.utils import cached_file

    components = {name: kwargs.pop(name) for name in attributes if kwargs.get(name) is not None}
    hub = {key: kwargs.pop(key) for key in _HUB_KWARGS if key in kwargs}
    trust_remote_code = kwargs.pop("trust_remote_code", False)  # explicit: never transformers' interactive question
    kwargs.pop("_from_auto", None)
    for key in _PIPELINE_KWARGS:
        kwargs.pop(key, None)
    source = os.fspath(source)
    base = hub.pop("subfolder", "") or ""

    def fetch(name: str) -> str:
        return cached_file(source, name, subfolder=base, **hub)

    with open(fetch(PROCESSOR_CONFIG_NAME), encoding="utf-8") as handle:
        settings = json.load(handle)
    templates = read_chat_templates(fetch, settings.pop("chat_templates", ["default"]))
    settings = {k: v for k, v in settings.items() if k not in ("processor_class", "auto_map")}
    settings.update(kwargs)

    ocr_folder = f"{base}/{OCR_TOKENIZER_SUBFOLDER}" if base else OCR_TOKENIZER_SUBFOLDER
    loaders = {
        "image_processor": (AutoImageProcessor, base),
        "tokenizer": (AutoTokenizer, base),
        "ocr_tokenizer": (AutoTokenizer, ocr_folder),
    }
    for name, (auto_class, folder) in loaders.items():
        if name not in components:
            components[name] = auto_class.from_pretrained(
                source, subfolder=folder, trust_remote_code=trust_remote_code, **hub
            )
    return {**components, "chat_template": templates or None, **settings}

"""PatentLMMProcessor: patent figures and prompts -> the tensors `PatentLMMForConditionalGeneration` takes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchFeature
from transformers.processing_utils import ImagesKwargs, MultiModalData, ProcessingKwargs, ProcessorMixin

from .call_arguments import CallArguments, per_figure, refuse_unsupported
from .constants import DEFAULT_IMAGE_TOKEN, DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_OCR_TOKENS
from .images import ImageInput, expand_to_square, load_image
from .ocr_base import OcrEngine

# Remote code: transformers 4.57 copies only the files this module imports itself, so every OCR module is named here
# (`noqa: F401`; importing them needs only numpy: the optional engines' packages load when an engine first runs).
from .ocr_drawing import DrawingEngine  # noqa: F401
from .ocr_engines import PAPER_OCR_ENGINE, load_ocr_engine, ocr_engine_from_dict
from .ocr_pp import PPOcrModels  # noqa: F401
from .ocr_rapidocr import RapidOcrEngine  # noqa: F401
from .ocr_tesseract import TesseractEngine  # noqa: F401
from .ocr_tokens import pad_ocr_tokens
from .prepared_figures import FigureError, PreparedFigure, prepare_figures
from .processor_files import (
    OCR_TOKENIZER_SUBFOLDER,
    PROCESSOR_CONFIG_NAME,
    make_tokenizer_config_portable,
    read_processor_folder,
    start_a_word_after_each_special_token,
    write_chat_templates,
    write_json,
)
from .prompts import CHAT_TEMPLATES, DEFAULT_PROMPT_FORMAT, unescape_description
from .text_inputs import encode_prompts, replacement_offsets

__all__ = ["PatentLMMProcessor", "PatentLMMProcessorKwargs"]


class PatentLMMImagesKwargs(ImagesKwargs, total=False):
    """Per-figure precomputed OCR that `PatentLMMProcessor.__call__` takes (one entry per figure), and its
    `pad_to_square` override."""

    ocr_words: Sequence[Sequence[str]]
    ocr_boxes: Sequence[Sequence[Sequence[int]]]
    ocr: Sequence[dict]
    pad_to_square: bool


class PatentLMMProcessorKwargs(ProcessingKwargs, total=False):
    """The keyword arguments of a call, declared the transformers way: vLLM reads them to tell a request's
    `mm_processor_kwargs` meant for the call (`ocr_words`, `ocr_boxes`, `ocr`, `pad_to_square`) from processor
    settings."""

    images_kwargs: PatentLMMImagesKwargs


class PatentLMMProcessor(ProcessorMixin):
    r"""
    Builds PatentLMM inputs from figures and prompts.

    Args:
        image_processor (`LayoutLMv3ImageProcessor`): resizes to the encoder's `input_size` and normalises
            (`apply_ocr=False`: OCR is run here, on the unpadded figure).
        tokenizer (`PreTrainedTokenizerBase`): the decoder's tokenizer; it must know `image_token`.
        ocr_tokenizer (`LayoutLMv3TokenizerFast`): tokenises OCR words with their boxes.
        chat_template (`str` or `dict`, *optional*): Jinja chat template(s) by prompt format; defaults to
            `prompts.CHAT_TEMPLATES` (`"vicuna_v1"`, `"plain"`, `"original_inference"`); a string replaces
            `"vicuna_v1"`. `processor.chat_template` is the `vicuna_v1` one (a single string, as vLLM and
            `apply_chat_template` read it), `processor.chat_templates` all of them;
            `apply_chat_template(..., chat_template="plain")` takes a format.
        num_image_patches (`int`, defaults to 577): visual encoder positions (CLS + (input_size / patch_size)^2).
        vision_feature_select_strategy (`str`, defaults to `"patch"`): as in `PatentLMMConfig`.
        max_ocr_tokens (`int`, defaults to 512): OCR token budget per figure, `</s>` included.
        image_token (`str`, defaults to `"<image>"`): the placeholder written in prompts.
        ocr_lang (`str`, *optional*): with `ocr_engine=None`, Tesseract's language (`-l`; `None` = English).
        tesseract_config (`str`, defaults to `""`): with `ocr_engine=None`, extra Tesseract flags, as in
            `LayoutLMv3ImageProcessor`.
        ocr_engine (`str`, `dict` or `OcrEngine`, *optional*): the OCR engine, by name (`"tesseract"`,
            `"rapidocr"`, `"drawing"`) or as `engine.to_dict()` (how it is saved); `None` is Tesseract with
            `ocr_lang` and `tesseract_config`: the paper's OCR, and what processors saved before engines existed
            load with.
        max_image_pixels (`int`, defaults to 64,000,000): larger figures raise `ImageTooLargeError`.
        num_ocr_workers (`int`, *optional*): figures of one call OCR'd at once; `None` = one per CPU core.
        pad_to_square (`bool`, defaults to `True`): pad each figure to a square (fill: the normalisation mean) before
            resizing, as the original's training did (`image_aspect_ratio pad`); its inference script resized the
            figure as it was (`finetuned_inference.py:127`). `__call__(..., pad_to_square=False)` overrides it.
    """

    attributes = ["image_processor", "tokenizer", "ocr_tokenizer"]  # transformers 4.x reads these three
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"
    ocr_tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        ocr_tokenizer=None,
        chat_template: str | dict | None = None,
        num_image_patches: int = 577,
        vision_feature_select_strategy: str = "patch",
        max_ocr_tokens: int = DEFAULT_MAX_OCR_TOKENS,
        image_token: str = DEFAULT_IMAGE_TOKEN,
        ocr_lang: str | None = None,
        tesseract_config: str = "",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        num_ocr_workers: int | None = None,
        pad_to_square: bool = True,
        ocr_engine: str | dict | OcrEngine | None = None,
        **kwargs,
    ):
        if vision_feature_select_strategy not in ("patch", "cls_patch"):
            raise ValueError(
                "vision_feature_select_strategy must be 'patch' or 'cls_patch', "
                f"got {vision_feature_select_strategy!r}."
            )
        if image_token not in tokenizer.get_vocab():
            raise ValueError(
                f"The decoder tokenizer has no {image_token!r} token: add it with "
                f"tokenizer.add_special_tokens({{'additional_special_tokens': [{image_token!r}]}}) and resize the "
                "model's embeddings."
            )
        self.num_image_patches = num_image_patches
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.max_ocr_tokens = max_ocr_tokens
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.max_image_pixels = max_image_pixels
        self.num_ocr_workers = num_ocr_workers
        self.pad_to_square = pad_to_square
        if ocr_engine is None:
            ocr_engine = load_ocr_engine(PAPER_OCR_ENGINE, lang=ocr_lang, config=tesseract_config)
        elif ocr_lang is not None or tesseract_config:
            raise ValueError("Pass Tesseract's settings inside ocr_engine, not as ocr_lang/tesseract_config beside it.")
        self.ocr_engine = ocr_engine_from_dict(ocr_engine)
        super().__init__(image_processor, tokenizer, ocr_tokenizer, **kwargs)
        templates = {DEFAULT_PROMPT_FORMAT: chat_template} if isinstance(chat_template, str) else chat_template
        self.chat_templates = dict(templates if templates is not None else CHAT_TEMPLATES)
        self.chat_template = self.chat_templates.get(DEFAULT_PROMPT_FORMAT)

    # ------------------------------------------------------------------ per-figure steps

    def num_image_features(self, num_ocr_tokens: int) -> int:
        """Placeholders (= encoder features) for a figure with `num_ocr_tokens` OCR tokens."""
        return num_ocr_tokens + self.num_image_patches - (1 if self.vision_feature_select_strategy == "patch" else 0)

    def ocr(self, image: ImageInput) -> tuple[list[str], list[list[int]]]:
        """Words and 0-1000 boxes of one figure (any input `load_image` accepts), read by `ocr_engine`."""
        return self.ocr_engine(load_image(image, self.max_image_pixels))

    def _get_num_multimodal_tokens(
        self, image_sizes: Sequence[Sequence[int]] | None = None, **kwargs
    ) -> MultiModalData:
        """Placeholders per figure at most (a full OCR budget: `num_image_features(max_ocr_tokens)`), whatever its
        size, and one row of `pixel_values` per figure; vLLM sizes its memory profile and encoder cache with it."""
        if image_sizes is None:
            return MultiModalData()
        return MultiModalData(
            num_image_tokens=[self.num_image_features(self.max_ocr_tokens)] * len(image_sizes),
            num_image_patches=[1] * len(image_sizes),
        )

    def prepare(
        self,
        images: ImageInput | Sequence[ImageInput],
        ocr_words: Sequence[Sequence[str] | None] | None = None,
        ocr_boxes: Sequence[Sequence[Sequence[int]] | None] | None = None,
        ocr: dict | Sequence[dict | None] | None = None,
        errors: str = "raise",
    ) -> list[PreparedFigure | FigureError]:
        """Each figure made ready once: loaded as RGB (the pixel cap checked first), OCR'd by `ocr_engine` unless
        its `ocr_words`/`ocr_boxes` or official `ocr` tokens are given (one per figure, `None` where not; figures
        without are read in `num_ocr_workers` threads), its OCR tokenized, and its placeholder count.

        `__call__` is built on this; a caller that needs the OCR or the token counts first (to sort a batch, to
        draw the words) prepares the figures and passes the `PreparedFigure`s as `images`. A figure that cannot be
        prepared raises a `FigureError` (a `ValueError`) naming its index; `errors="return"` puts it in the
        figure's place instead and prepares the others.
        """
        args = per_figure(images, None, None, ocr_words, ocr_boxes, ocr)
        return prepare_figures(self, args.images, args.ocr_words, args.ocr_boxes, args.ocr, errors)

    def _pixel_values(self, images: list, pad_to_square: bool) -> torch.Tensor:
        if pad_to_square:
            fill = tuple(int(255 * mean) for mean in self.image_processor.image_mean)  # LLaVA's expand2square colour
            images = [expand_to_square(image, fill) for image in images]
        return self.image_processor(images, return_tensors="pt")["pixel_values"]  # (B, 3, S, S)

    # ------------------------------------------------------------------ main entry point

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput] | None = None,
        text: str | Sequence[str] | None = None,
        suffix: str | Sequence[str] | None = None,
        ocr_words: Sequence[Sequence[str]] | None = None,
        ocr_boxes: Sequence[Sequence[Sequence[int]]] | None = None,
        ocr: dict | Sequence[dict] | None = None,
        padding_side: str | None = None,
        pad_to_square: bool | None = None,
        return_tensors: str | None = "pt",
        add_special_tokens: bool | None = None,
        truncation: bool | None = None,
        return_text_replacement_offsets: bool = False,
        **kwargs,
    ) -> BatchFeature:
        r"""
        Args:
            images: one figure or a list (paths, bytes, PIL images, arrays, or `PreparedFigure`s from `prepare`), one
                per sample.
            text: one prompt or a list; each holds `<image>` exactly once when its sample has a figure.
            suffix: the target text per sample (e.g. the description). When given, the output has `labels` that
                cover only the suffix and the end-of-sequence token appended after it.
            ocr_words, ocr_boxes: precomputed OCR per figure (words and 0-1000 boxes); skips Tesseract.
            ocr: precomputed LayoutLMv3 tokens per figure, as values of the official `ocr.json`.
            padding_side: `"left"` or `"right"`; defaults to the decoder tokenizer's.
            pad_to_square: pad the figures to a square before resizing; defaults to the processor's `pad_to_square`.
            add_special_tokens: accepted as transformers' `apply_chat_template(tokenize=True)` passes it; each prompt
                gets exactly one `<s>` either way (a leading `<s>`, as the default chat template writes, is that one).
            truncation: `None` or `False` only: prompts are never cut (that would cut a figure's placeholders).
            return_text_replacement_offsets: also return `text_replacement_offsets`, per prompt a list with one dict
                per `<image>` (`type`, `span`, `new_span`, `text`, `replacement`: the placeholders it expands to),
                as transformers' `ProcessorMixin` does; vLLM reads each figure's placeholder count from it.

        Returns:
            `BatchFeature` with
            - `input_ids`, `attention_mask` `(batch_size, sequence_length)` (and `labels` when `suffix` is given),
            - `pixel_values` `(batch_size, 3, input_size, input_size)`,
            - `ocr_input_ids`, `ocr_attention_mask` `(batch_size, ocr_length)`,
            - `ocr_bbox` `(batch_size, ocr_length, 4)`,
            - `text_replacement_offsets` (a list, not a tensor) when asked for.
        """
        refuse_unsupported(kwargs, truncation)
        args = per_figure(images, text, suffix, ocr_words, ocr_boxes, ocr)

        data: dict[str, Any] = {}
        num_features: list[int] = []
        if args.images is not None:
            figures, num_features = self._figure_inputs(args, pad_to_square)
            data.update(figures)
        texts = args.texts
        if texts is not None:
            side = padding_side or self.tokenizer.padding_side
            data.update(encode_prompts(self.tokenizer, texts, args.suffixes, num_features, self.image_token, side))
        batch = BatchFeature(data, tensor_type=return_tensors)
        if return_text_replacement_offsets:  # set after the tensor conversion: a list of dicts per prompt
            batch["text_replacement_offsets"] = replacement_offsets(texts or [], num_features, self.image_token)
        return batch

    def _figure_inputs(self, args: CallArguments, pad_to_square: bool | None) -> tuple[dict[str, Any], list[int]]:
        """`pixel_values` and the padded OCR inputs (lists) of the call's figures, and their placeholder counts."""
        figures = prepare_figures(self, args.images, args.ocr_words, args.ocr_boxes, args.ocr)
        pad = self.pad_to_square if pad_to_square is None else pad_to_square
        ocr_inputs = pad_ocr_tokens([figure.ocr_tokens for figure in figures], self.ocr_tokenizer.pad_token_id)
        pixel_values = self._pixel_values([figure.image for figure in figures], pad)
        return {"pixel_values": pixel_values, **ocr_inputs}, [figure.num_image_features for figure in figures]

    # ------------------------------------------------------------------ chat templates

    def apply_chat_template(self, conversation, chat_template: str | None = None, **kwargs):
        """transformers' `apply_chat_template`; `chat_template` may also name a prompt format of `chat_templates`
        (`"vicuna_v1"`, `"plain"`, `"original_inference"`), `None` renders the default (`vicuna_v1`)."""
        if chat_template == "default":
            warnings.warn(
                f"chat_template='default' is deprecated and will be removed; use {DEFAULT_PROMPT_FORMAT!r}.",
                FutureWarning,
                stacklevel=2,
            )
            chat_template = DEFAULT_PROMPT_FORMAT
        chat_template = self.chat_templates.get(chat_template, chat_template) if chat_template else chat_template
        return super().apply_chat_template(conversation, chat_template=chat_template, **kwargs)

    # ------------------------------------------------------------------ decoding

    def batch_decode(self, sequences, skip_special_tokens: bool = True, unescape: bool = True, **kwargs) -> list[str]:
        """Decodes generated ids; `unescape` turns the data's `[[`/`]]` back into `<`/`>`."""
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)
        return [unescape_description(t).strip() if unescape else t for t in texts]

    def decode(self, sequence, skip_special_tokens: bool = True, unescape: bool = True, **kwargs) -> str:
        return self.batch_decode([sequence], skip_special_tokens=skip_special_tokens, unescape=unescape, **kwargs)[0]

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "ocr_input_ids", "ocr_bbox", "ocr_attention_mask"]

    # ------------------------------------------------------------------ save / load (same layout on 4.x and 5.x)

    def _settings(self) -> dict[str, Any]:
        return {
            "num_image_patches": self.num_image_patches,
            "vision_feature_select_strategy": self.vision_feature_select_strategy,
            "max_ocr_tokens": self.max_ocr_tokens,
            "image_token": self.image_token,
            "max_image_pixels": self.max_image_pixels,
            "num_ocr_workers": self.num_ocr_workers,
            "pad_to_square": self.pad_to_square,
            "ocr_engine": self.ocr_engine.to_dict(),
        }

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> list[str]:
        """Writes the image processor and decoder tokenizer to the root, the OCR tokenizer to `ocr_tokenizer/`,
        the chat templates as `.jinja` files, `processor_config.json`, and (when registered for `AutoProcessor`)
        this module's source files for `trust_remote_code` loading. A SentencePiece decoder tokenizer is saved to
        tokenize a whole prompt as the original's rule does (`start_a_word_after_each_special_token`)."""
        if kwargs.pop("push_to_hub", False):
            raise ValueError("Use processor.push_to_hub(repo_id) to upload a processor.")
        from transformers.dynamic_module_utils import custom_object_save

        os.makedirs(save_directory, exist_ok=True)
        self.image_processor.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)
        self.ocr_tokenizer.save_pretrained(os.path.join(save_directory, OCR_TOKENIZER_SUBFOLDER))
        for folder in (save_directory, os.path.join(save_directory, OCR_TOKENIZER_SUBFOLDER)):
            make_tokenizer_config_portable(folder)
        start_a_word_after_each_special_token(save_directory)

        templates = {**self.chat_templates, DEFAULT_PROMPT_FORMAT: self.chat_template}  # a replaced default too
        templates = {name: template for name, template in templates.items() if template is not None}
        names = write_chat_templates(os.fspath(save_directory), templates)

        config = {"processor_class": type(self).__name__, "chat_templates": sorted(names), **self._settings()}
        if self._auto_class is not None:
            custom_object_save(self, save_directory)
            config["auto_map"] = {self._auto_class: f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"}
        path = os.path.join(save_directory, PROCESSOR_CONFIG_NAME)
        write_json(path, config, sort_keys=True)
        return [path]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> PatentLMMProcessor:
        """Loads a processor saved by `save_pretrained`, from a folder or a Hub repo id. Components the caller
        already loaded (`image_processor=`, `tokenizer=`, `ocr_tokenizer=`, as vLLM passes its tokenizer) are
        used as given; other keyword arguments override the saved settings."""
        return cls(**read_processor_folder(pretrained_model_name_or_path, cls.attributes, **kwargs))


PatentLMMProcessor.register_for_auto_class("AutoProcessor")

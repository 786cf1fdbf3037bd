"""The Gradio web demo: a figure in; its description, OCR overlay and highlighted numerals out (docs/demo.md)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr
from PIL import UnidentifiedImageError

from modeling_patentlmm import PatentLMMForConditionalGeneration
from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from patentlmm.evaluation.numerals import extract_references
from patentlmm.evaluation.visualize import IN_FIGURE, NOT_IN_FIGURE, highlight_numerals, ocr_overlay
from patentlmm.inference.figures import ocr_text
from patentlmm.inference.generation import generate_batch
from patentlmm.inference.grounding import DEFAULT_GROUNDING, GROUNDINGS, grounding_for
from patentlmm.inference.loading import load_model_and_processor
from patentlmm_common.paper import ARXIV_URL
from processing import PatentLMMProcessor, build_prompt, load_image
from processing.constants import DESCRIPTION_TYPES

__all__ = ["DELETE_CACHE", "MAX_QUEUE", "MAX_UPLOAD_SIZE", "build_app", "serve"]

MAX_UPLOAD_SIZE = "20mb"  # Gradio refuses bigger uploads; a 300 dpi USPTO sheet PNG is well under 1 MB
MAX_QUEUE = 32  # requests waiting for the model at most; more are refused at once ("queue is full"), never piled up
DELETE_CACHE = (300, 3600)  # Gradio deletes its cached files (overlays, uploads never described) older than an hour


class _Uploads:
    """Reads each upload from Gradio's cache once and deletes it there, keeping the bytes of the last `keep` uploads
    read (at most `keep` x `MAX_UPLOAD_SIZE` in memory): Gradio stores identical uploads at one path, so a request
    whose upload another request already read and deleted (the same figure sent twice, Describe clicked twice) is
    served from them."""

    def __init__(self, keep: int):
        self.keep = keep
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, path: str) -> bytes:
        with self._lock:
            try:
                data = Path(path).read_bytes()
            except FileNotFoundError:
                if path not in self._recent:
                    raise
                data = self._recent[path]
            else:
                os.remove(path)
            self._recent[path] = data
            self._recent.move_to_end(path)
            while len(self._recent) > self.keep:
                self._recent.popitem(last=False)
            return data


def _open_upload(uploads: _Uploads, path: str, max_pixels: int | None):
    """The uploaded figure as RGB, or a `gr.Error` with the package's own reason (gone, too large, not an image,
    damaged: whatever Pillow's decoder raises)."""
    name = Path(path).name
    try:
        return load_image(uploads.read(path), max_pixels)
    except FileNotFoundError as error:
        raise gr.Error(f"The upload of {name} is gone from the server: upload it again.") from error
    except UnidentifiedImageError as error:
        raise gr.Error(f"{name} is not an image that Pillow can read (PNG, JPEG, TIFF, ...).") from error
    except Exception as error:  # noqa: BLE001 (over the cap, or damaged: SyntaxError, IndexError, OSError, ...)
        raise gr.Error(f"{str(error).replace('The image bytes', f'Image {name!r}')}".strip() or
                       f"{name} is damaged ({type(error).__name__}).") from error  # fmt: skip


def build_app(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_queue: int = MAX_QUEUE,
) -> gr.Blocks:
    """The Gradio app around `model` and `processor`: the figure is uploaded as a file and opened only by
    `processing.load_image` (pixel cap checked from the header, padding included), never decoded by Gradio.

    Under load, one figure is described at a time (memory: one upload, one OCR and one `generate` at once) and at
    most `max_queue` requests wait; a request beyond that is refused at once with Gradio's "queue is full"."""

    uploads = _Uploads(keep=max_queue)

    def describe(upload: str | None, desc_type: str, grounding: str = DEFAULT_GROUNDING):
        if upload is None:
            raise gr.Error("Upload a patent figure first.")
        (figure,) = processor.prepare([_open_upload(uploads, upload, processor.max_image_pixels)])
        references = extract_references(" ".join(figure.ocr_words))
        grounded = grounding_for(model, processor.tokenizer, [ocr_text(processor, figure)], grounding, max_new_tokens)
        prompt = build_prompt(desc_type)
        description = generate_batch(
            model, processor, [figure], prompt, max_new_tokens, logits_processor=[grounded] if grounded else []
        )[0]
        overlay = ocr_overlay(figure.image, figure.ocr_words, figure.ocr_boxes, references.numerals)
        return description, overlay, highlight_numerals(description, references)

    with gr.Blocks(title="PatentLMM", delete_cache=DELETE_CACHE) as app:
        gr.Markdown(f"# PatentLMM\nDescriptions of patent figures ([arXiv 2501.15074]({ARXIV_URL})).")
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Patent figure (PNG, JPEG, TIFF)", type="filepath", elem_id="figure")
                desc_type = gr.Radio(
                    list(DESCRIPTION_TYPES), value=DESCRIPTION_TYPES[0], label="Description", elem_id="type"
                )
                grounding = gr.Radio(
                    list(GROUNDINGS), value=DEFAULT_GROUNDING, label="Cite only what the OCR read", elem_id="grounding"
                )
                button = gr.Button("Describe", variant="primary", elem_id="describe")
            with gr.Column():
                description = gr.Textbox(label="Description", lines=6, elem_id="description")
                highlighted = gr.HighlightedText(
                    label="Reference numerals", color_map={IN_FIGURE: "green", NOT_IN_FIGURE: "red"}
                )
                overlay = gr.Image(label="OCR words on the figure", elem_id="overlay", height=420)
        button.click(
            describe,
            inputs=[image, desc_type, grounding],
            outputs=[description, overlay, highlighted],
            concurrency_limit=1,
        )
    return app.queue(max_size=max_queue)


def serve(
    model_name_or_path: str,
    host: str | None = None,
    port: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> None:
    """Loads the model and serves the app until interrupted (`patentlmm demo --web`, `app.py`); `host`/`port` None:
    Gradio's (`$GRADIO_SERVER_NAME`/`$GRADIO_SERVER_PORT`, else 127.0.0.1:7860)."""
    model, processor = load_model_and_processor(model_name_or_path)
    app = build_app(model, processor, max_new_tokens)
    app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_SIZE)

"""The Gradio web demo: a figure in; its description, OCR overlay and highlighted numerals out (docs/demo.md)."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from PIL import UnidentifiedImageError

from modeling_patentlmm import PatentLMMForConditionalGeneration
from patentlmm.assembly.components import DEFAULT_MAX_NEW_TOKENS
from patentlmm.evaluation.numerals import extract_references
from patentlmm.evaluation.visualize import IN_FIGURE, NOT_IN_FIGURE, highlight_numerals, ocr_overlay
from patentlmm.inference.generation import generate_batch
from patentlmm.inference.loading import load_model_and_processor
from patentlmm.paper import ARXIV_URL
from processing import PatentLMMProcessor, build_prompt, load_image
from processing.constants import DESCRIPTION_TYPES

__all__ = ["MAX_UPLOAD_SIZE", "build_app", "serve"]

MAX_UPLOAD_SIZE = "20mb"  # Gradio refuses bigger uploads; a 300 dpi USPTO sheet PNG is well under 1 MB


def _open_upload(path: str, max_pixels: int | None):
    """The uploaded figure as RGB, or a `gr.Error` with the package's own reason (too large, not an image, damaged).
    The upload is removed from Gradio's cache once read, whatever the outcome."""
    name = Path(path).name
    try:
        return load_image(path, max_pixels)
    except UnidentifiedImageError as error:
        raise gr.Error(f"{name} is not an image that Pillow can read (PNG, JPEG, TIFF, ...).") from error
    except (ValueError, OSError) as error:  # ImageTooLargeError (a ValueError) or a damaged file
        raise gr.Error(str(error).replace(path, name)) from error
    finally:
        os.remove(path)


def build_app(
    model: PatentLMMForConditionalGeneration,
    processor: PatentLMMProcessor,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> gr.Blocks:
    """The Gradio app around `model` and `processor`: the figure is uploaded as a file and opened only by
    `processing.load_image` (pixel cap checked from the header, padding included), never decoded by Gradio."""

    def describe(upload: str | None, desc_type: str):
        if upload is None:
            raise gr.Error("Upload a patent figure first.")
        (figure,) = processor.prepare([_open_upload(upload, processor.max_image_pixels)])
        references = extract_references(" ".join(figure.ocr_words))
        description = generate_batch(model, processor, [figure], build_prompt(desc_type), max_new_tokens)[0]
        overlay = ocr_overlay(figure.image, figure.ocr_words, figure.ocr_boxes, references.numerals)
        return description, overlay, highlight_numerals(description, references)

    with gr.Blocks(title="PatentLMM") as app:
        gr.Markdown(f"# PatentLMM\nDescriptions of patent figures ([arXiv 2501.15074]({ARXIV_URL})).")
        with gr.Row():
            with gr.Column():
                image = gr.File(label="Patent figure (PNG, JPEG, TIFF)", type="filepath", elem_id="figure")
                desc_type = gr.Radio(
                    list(DESCRIPTION_TYPES), value=DESCRIPTION_TYPES[0], label="Description", elem_id="type"
                )
                button = gr.Button("Describe", variant="primary", elem_id="describe")
            with gr.Column():
                description = gr.Textbox(label="Description", lines=6, elem_id="description")
                highlighted = gr.HighlightedText(
                    label="Reference numerals", color_map={IN_FIGURE: "green", NOT_IN_FIGURE: "red"}
                )
                overlay = gr.Image(label="OCR words on the figure", elem_id="overlay", height=420)
        button.click(describe, inputs=[image, desc_type], outputs=[description, overlay, highlighted])
    return app


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

"""The web demo: upload a patent figure, pick brief or detailed, read the description, the OCR words drawn on the
figure and the reference numerals highlighted (green: also in the figure's OCR; red: not found in the figure).

    patentlmm demo --web --model outputs/tiny            # http://127.0.0.1:7860
    PATENTLMM_MODEL=you/patentlmm-brief python app.py    # the same app as a Hugging Face Space
"""

from __future__ import annotations

import argparse
import re

import gradio as gr
from PIL import Image, ImageDraw

from modeling_patentlmm import PatentLMMForConditionalGeneration
from processing import PatentLMMProcessor, build_prompt, load_image

from .describe import Figure, generate_batch, load_model_and_processor
from .numerals import References, extract_references

__all__ = ["add_arguments", "build_app", "highlight_numerals", "ocr_overlay", "run"]

IN_FIGURE, NOT_IN_FIGURE = "in figure", "not in figure"
_NUMBER = re.compile(r"\d{1,4}[a-z]?'?")


def ocr_overlay(image: Image.Image, words: list[str], boxes: list[list[int]], numerals: frozenset[str]) -> Image.Image:
    """`image` with each OCR word's box (0-1000 coordinates) drawn: reference numerals in red, other words in blue."""
    overlay = image.convert("RGB")
    draw = ImageDraw.Draw(overlay)
    width, height = overlay.size
    line = max(2, round(max(width, height) / 500))
    for word, (x0, y0, x1, y1) in zip(words, boxes):
        colour = (220, 30, 30) if word.lower().strip("()") in numerals else (30, 90, 220)
        draw.rectangle(
            (x0 * width / 1000, y0 * height / 1000, x1 * width / 1000, y1 * height / 1000), outline=colour, width=line
        )
    return overlay


def highlight_numerals(text: str, figure: References) -> list[tuple[str, str | None]]:
    """`text` split for `gr.HighlightedText`; each reference numeral is labelled by whether the figure has it."""
    numerals = extract_references(text).numerals
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for match in _NUMBER.finditer(text):
        if match.group().lower() not in numerals:
            continue
        pieces.append((text[position : match.start()], None))
        label = IN_FIGURE if match.group().lower() in figure.numerals else NOT_IN_FIGURE
        pieces.append((match.group(), label))
        position = match.end()
    pieces.append((text[position:], None))
    return [(piece, label) for piece, label in pieces if piece]


def build_app(
    model: PatentLMMForConditionalGeneration, processor: PatentLMMProcessor, max_new_tokens: int = 512
) -> gr.Blocks:
    """The Gradio app around `model` and `processor`."""

    def describe(image: Image.Image | None, desc_type: str):
        if image is None:
            raise gr.Error("Upload a patent figure first.")
        figure = load_image(image, processor.max_image_pixels)
        words, boxes = processor.ocr(figure)
        references = extract_references(" ".join(words))
        upload = Figure(image_id="upload", image=figure, ocr_words=words, ocr_boxes=boxes)
        description = generate_batch(model, processor, [upload], build_prompt(desc_type), max_new_tokens)[0]
        overlay = ocr_overlay(figure, words, boxes, references.numerals)
        return description, overlay, highlight_numerals(description, references)

    with gr.Blocks(title="PatentLMM") as app:
        gr.Markdown(
            "# PatentLMM\nDescriptions of patent figures ([arXiv 2501.15074](https://arxiv.org/abs/2501.15074))."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", label="Patent figure", elem_id="figure", height=420)
                desc_type = gr.Radio(["brief", "detailed"], value="brief", label="Description", elem_id="type")
                button = gr.Button("Describe", variant="primary", elem_id="describe")
            with gr.Column():
                description = gr.Textbox(label="Description", lines=6, elem_id="description")
                highlighted = gr.HighlightedText(
                    label="Reference numerals", color_map={IN_FIGURE: "green", NOT_IN_FIGURE: "red"}
                )
                overlay = gr.Image(label="OCR words on the figure", elem_id="overlay", height=420)
        button.click(describe, inputs=[image, desc_type], outputs=[description, overlay, highlighted])
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web", action="store_true", help="serve the Gradio web demo")
    parser.add_argument("--model", default="outputs/tiny", help="PatentLMM folder or Hub repo id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-new-tokens", type=int, default=512)


def run(args: argparse.Namespace) -> int:
    if not args.web:
        raise SystemExit(
            "patentlmm demo: only the web demo (--web) exists yet; the offline end-to-end demo is still to come."
        )
    model, processor = load_model_and_processor(args.model)
    build_app(model, processor, args.max_new_tokens).launch(server_name=args.host, server_port=args.port)
    return 0

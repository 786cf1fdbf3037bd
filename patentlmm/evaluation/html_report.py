"""A self-contained HTML report of described figures: OCR overlays, scores, training losses (docs/evaluation.md)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from patentlmm.evaluation.numerals import References, extract_references, fidelity
from patentlmm.evaluation.visualize import IN_FIGURE, highlight_numerals, ocr_overlay
from patentlmm_common.files import atomic_write
from patentlmm_common.paper import TABLE2_METRICS

__all__ = ["loss_curve_svg", "render_report", "write_report"]

THUMBNAIL_SIZE = 640  # longest side of the embedded pictures, in pixels
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; } .figure { border-top: 2px solid #ddd; padding: 1em 0; }
.pictures { display: flex; gap: 1em; } .pictures img { max-width: 48%; border: 1px solid #ccc; }
.texts { display: flex; gap: 1em; } .texts > div { flex: 1; } .text { white-space: pre-wrap; background: #fafafa;
padding: .5em; border: 1px solid #eee; } .in { background: #c8f0c8; } .out { background: #f6c6c6; }
.note { background: #fff7d6; padding: .6em 1em; border: 1px solid #eed98a; }
"""


def _data_uri(image: Image.Image) -> str:
    """A downscaled PNG of `image` as a data URI."""
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _highlighted(text: str, figure: References) -> str:
    """`text` as HTML, each reference numeral marked green (in the figure) or red (not in it)."""
    parts = []
    for piece, label in highlight_numerals(text, figure):
        if label is None:
            parts.append(html.escape(piece))
        else:
            css = "in" if label == IN_FIGURE else "out"
            parts.append(f'<span class="{css}" title="{label}">{html.escape(piece)}</span>')
    return "".join(parts)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def loss_curve_svg(losses: Sequence[float], width: int = 360, height: int = 120) -> str:
    """An inline SVG polyline of `losses` (one point per logged step), with its first and last values."""
    if not losses:
        return "<em>no loss logged</em>"
    low, high = min(losses), max(losses)
    span = (high - low) or 1.0
    step = (width - 20) / max(1, len(losses) - 1)
    points = " ".join(
        f"{10 + i * step:.1f},{10 + (height - 20) * (high - loss) / span:.1f}" for i, loss in enumerate(losses)
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="training loss">'
        f'<rect width="{width}" height="{height}" fill="#fafafa" stroke="#ccc"/>'
        f'<polyline points="{points}" fill="none" stroke="#2a6fdb" stroke-width="2"/></svg>'
        f"<br>{len(losses)} steps: loss {losses[0]:.3f} → {losses[-1]:.3f}"
    )


def _metrics_table(metrics: Mapping) -> str:
    header = "".join(f"<th>{html.escape(m.header)}</th>" for m in TABLE2_METRICS)
    rows = []
    if "paper" in metrics:
        cells = "".join(f"<td>{_cell(metrics['paper'][m.key])}</td>" for m in TABLE2_METRICS)
        rows.append(f"<tr><td>PatentLMM (paper, PatentDesc-355k test)</td>{cells}</tr>")
    if "metrics" in metrics:
        cells = "".join(f"<td>{_cell(metrics['metrics'][m.key])}</td>" for m in TABLE2_METRICS)
        rows.append(f"<tr><td>this model (n={metrics['samples_with_reference']})</td>{cells}</tr>")
    table = f"<table><tr><th>model</th>{header}</tr>{''.join(rows)}</table>"
    for key, who in (("fidelity", "predictions"), ("reference_fidelity", "references")):
        if key in metrics:
            f = metrics[key]
            table += (
                f"<p>Reference-numeral fidelity of the {who} (n={f['samples']}): precision "
                f"{_cell(f['numeral_precision'])}, recall {_cell(f['numeral_recall'])}, figure-label agreement "
                f"{_cell(f['label_agreement'])} (n={f['label_agreement_samples']}).</p>"
            )
    return table


def _figure_section(
    row: Mapping, image: Image.Image, words: list[str], boxes: list[list[int]], ocr_engine: str | None
) -> str:
    figure = extract_references(" ".join(words))
    overlay = ocr_overlay(image, words, boxes, figure.numerals)
    scores = fidelity(row["prediction"], figure)
    reference = row.get("reference")
    ocr_text = html.escape(" ".join(words)) or "<em>no words</em>"
    numerals = html.escape(" ".join(sorted(figure.numerals, key=lambda n: (len(n), n)))) or "<em>none</em>"
    labels = html.escape(", ".join(figure.labels)) or "<em>none</em>"
    engine = f"the <code>{html.escape(ocr_engine)}</code> engine" if ocr_engine else "OCR"
    reference_html = _highlighted(reference, figure) if reference is not None else "<em>none</em>"
    image_id = html.escape(row["image_id"])
    return f"""
<div class="figure" id="{image_id}">
  <h3>{image_id}</h3>
  <div class="pictures">
    <img src="{_data_uri(image)}" alt="figure {image_id}">
    <img src="{_data_uri(overlay)}" alt="OCR overlay of {image_id}">
  </div>
  <p>Read by {engine}: {len(figure.numerals)} reference numerals ({numerals}); figure label(s): {labels}.</p>
  <p>OCR words ({len(words)}; boxes: numerals red, other words blue): {ocr_text}</p>
  <div class="texts">
    <div><h4>Prediction</h4><div class="text">{_highlighted(row["prediction"], figure)}</div></div>
    <div><h4>Reference</h4><div class="text">{reference_html}</div></div>
  </div>
  <p>Numerals: {scores["numerals_matched"]} of the prediction's {scores["numerals_in_text"]} are in the figure, which
  has {scores["numerals_in_figure"]}; figure label {"agrees" if scores["label_agreement"] else "–"}.</p>
</div>"""


def render_report(
    rows: Sequence[Mapping],
    figures: Mapping[str, tuple[Image.Image, list[str], list[list[int]]]],
    metrics: Mapping,
    losses: Mapping[str, Sequence[float]] | None = None,
    facts: Mapping[str, str] | None = None,
    title: str = "PatentLMM demo report",
    ocr_engine: str | None = None,
) -> str:
    """The report's HTML. `rows` are `patentlmm describe` rows; `figures` maps each row's `image_id` to its image,
    OCR words and boxes (0-1000), read by `ocr_engine` (its name, shown per figure); `metrics` is one type's entry
    of `evaluate_predictions`."""
    fact_rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>" for key, value in (facts or {}).items()
    )
    curves = "".join(
        f"<div><h4>{html.escape(name)}</h4>{loss_curve_svg(values)}</div>" for name, values in (losses or {}).items()
    )
    sections = "".join(_figure_section(row, *figures[row["image_id"]], ocr_engine) for row in rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">A small demo model, trained for minutes on a CPU on a handful of figures of one patent: its
descriptions show the pipeline at work, not the paper's quality. For the paper's model, convert the official
checkpoints with <code>patentlmm convert-original</code> (see the README).</p>
<table>{fact_rows}</table>
<h2>Metrics (percent)</h2>
{_metrics_table(metrics)}
<h2>Training loss</h2>
<div class="pictures">{curves}</div>
<h2>Held-out figures ({len(rows)})</h2>
{sections}
</body></html>
"""


def write_report(
    path: str | os.PathLike,
    rows: Sequence[Mapping],
    dataset: str | os.PathLike,
    split: str,
    config: str,
    metrics: Mapping,
    losses: Mapping[str, Sequence[float]] | None = None,
    facts: Mapping[str, str] | None = None,
    ocr_engine: str | None = None,
) -> Path:
    """Writes the report of `rows` (figures and OCR read from `dataset`'s `config`/`split`, made by `ocr_engine`)
    atomically to `path`."""
    from datasets import load_dataset

    wanted = {row["image_id"] for row in rows}
    figures = {}
    for example in load_dataset(str(dataset), config, split=split):
        if example["image_id"] in wanted:
            figures[example["image_id"]] = (example["image"], example["ocr_words"] or [], example["ocr_boxes"] or [])
    missing = sorted(wanted - set(figures))
    if missing:
        raise ValueError(f"{dataset} ({config}/{split}) lacks the figure(s) {missing[:5]} of the predictions.")
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(render_report(rows, figures, metrics, losses, facts, ocr_engine=ocr_engine))
    return path

"""`patentlmm.evaluation.html_report`: the HTML report of described figures, on real figures and hand-written rows."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from patentlmm.evaluation.evaluate import evaluate_predictions
from patentlmm.evaluation.html_report import THUMBNAIL_SIZE, loss_curve_svg, render_report

FIG8, FIG12 = "US20250204297A1__8", "US20250204297A1__12"


@pytest.fixture(scope="module")
def report_inputs(figures):
    """Two real figures with hand-made OCR (FIG. 8 shows numerals 16 and 11), predictions and their scores."""
    rows = [
        {
            "image_id": FIG8,
            "type": "brief",
            "prediction": "FIG. 8 shows the actuator 11 and the tank 24 <compressed>.",
            "reference": figures[FIG8]["brief_description"],
            "figure_numerals": ["11", "16"],
            "figure_labels": ["8"],
        },
        {"image_id": FIG12, "type": "brief", "prediction": "A parallelogram.", "reference": "FIG. 12 is a view."},
    ]
    ocr = {FIG8: (["16", "11", "Figure", "8"], [[100, 100, 150, 130], [300, 300, 350, 330], [400, 900, 500, 950],
                                                 [510, 900, 540, 950]]), FIG12: ([], [])}  # fmt: skip
    images = {image_id: Image.open(figures[image_id]["path"]) for image_id in ocr}
    metrics = evaluate_predictions(rows)["brief"]
    return rows, {i: (images[i], *ocr[i]) for i in ocr}, metrics


def test_report_shows_every_figure_with_its_texts_pictures_and_metrics(report_inputs):
    rows, figures, metrics = report_inputs
    page = render_report(rows, figures, metrics, losses={"stage 1": [3.0, 2.0, 1.5]}, facts={"model": "m<1>"})
    for image_id in (FIG8, FIG12):
        assert f'<div class="figure" id="{image_id}">' in page
    # Prediction with numerals marked: 11 is in the figure's OCR, 24 is not; the text itself is HTML-escaped.
    assert '<span class="in" title="in figure">11</span>' in page
    assert '<span class="out" title="not in figure">24</span>' in page
    assert "&lt;compressed&gt;" in page and "<compressed>" not in page
    assert "m&lt;1&gt;" in page
    # Two pictures per figure (the figure and its OCR overlay), PNGs no larger than the thumbnail size.
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 4
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as picture:
            assert max(picture.size) <= THUMBNAIL_SIZE
    # The paper's row and ours, in Table 2's columns.
    assert "PatentLMM (paper, PatentDesc-355k test)" in page and "<td>46.40</td>" in page
    assert "this model (n=2)" in page
    assert "no words" in page  # FIG. 12's OCR is empty
    assert "3 steps: loss 3.000 → 1.500" in page


def test_loss_curve_spans_the_box_from_highest_to_lowest_loss():
    svg = loss_curve_svg([4.0, 1.0, 2.5], width=120, height=60)
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert points == ["10.0,10.0", "60.0,50.0", "110.0,30.0"]
    assert loss_curve_svg([]) == "<em>no loss logged</em>"

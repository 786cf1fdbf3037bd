"""`dataset_builder.drawing_elements`: OCR words classified into elements, and ink components as nodes."""

from __future__ import annotations

import numpy as np

from dataset_builder.drawing_elements import drawing_elements, ink_nodes, word_elements
from dataset_builder.layout_elements import PATCH_CLASSES

NODE, NODE_LABEL, FIGURE_LABEL, TEXT = range(4)


def test_the_classes_are_the_first_four_patch_classes():
    assert PATCH_CLASSES[:4] == ("node", "node_label", "figure_label", "text")


def test_word_elements_classify_labels_numerals_and_text_lines():
    # a 1000 x 1000 px figure: 0-1000 boxes are pixels
    words = ["FIG.", "3", "12", "(14a)", "pump", "housing", "20", "valve", "FIG.4B", "far", "away", "FIG."]
    boxes = [
        [100, 900, 160, 940], [170, 900, 190, 940],  # "FIG. 3" on one line
        [300, 100, 330, 120],  # a numeral
        [400, 100, 450, 120],  # a numeral in parentheses
        [100, 300, 160, 320], [170, 300, 260, 320],  # one text line of two words
        [270, 300, 300, 320],  # a numeral on the same line: ends the text line
        [310, 300, 380, 320],  # text again: a new element
        [600, 900, 700, 940],  # a label in one word
        [100, 500, 140, 520], [500, 500, 560, 520],  # words on one row but far apart (gap 360 px > 1.5 x 20)
        [800, 100, 860, 140],  # "FIG." without a number: text
    ]  # fmt: skip
    elements, classes = word_elements(words, boxes, 1000, 1000)
    assert list(zip(elements, classes)) == [
        ([100, 900, 190, 940], FIGURE_LABEL),
        ([300, 100, 330, 120], NODE_LABEL),
        ([400, 100, 450, 120], NODE_LABEL),
        ([100, 300, 260, 320], TEXT),
        ([270, 300, 300, 320], NODE_LABEL),
        ([310, 300, 380, 320], TEXT),
        ([600, 900, 700, 940], FIGURE_LABEL),
        ([100, 500, 140, 520], TEXT),
        ([500, 500, 560, 520], TEXT),
        ([800, 100, 860, 140], TEXT),
    ]


def test_word_elements_measure_gaps_in_pixels():
    # the same 0-1000 gap of 40 is 80 px on a 2000 px wide figure (> 1.5 x 20 px line height): two elements
    words, boxes = ["pump", "housing"], [[100, 300, 160, 310], [200, 300, 260, 310]]
    assert len(word_elements(words, boxes, 500, 2000)[0]) == 1  # 20 px gap, 30 px limit
    assert len(word_elements(words, boxes, 2000, 2000)[0]) == 2  # 80 px gap


def test_ink_nodes_keep_large_components_and_drop_specks_and_words():
    ink = np.zeros((400, 500), dtype=bool)
    ink[100, 100:201] = ink[200, 100:201] = True  # a 101 x 101 px box outline
    ink[100:201, 100] = ink[100:201, 200] = True
    ink[300:306, 300:306] = True  # a speck
    ink[20:60, 300:420] = True  # a big blob under an OCR word box: erased
    ink[300, 10:60] = True  # two 50 px strokes 5 px apart: one 105 px component when joined
    ink[300, 65:115] = True
    word = [[590, 40, 850, 160]]  # 0-1000 of x 295..425, y 16..64
    assert ink_nodes(ink, word, min_side=91, join=3) == [[200, 250, 402, 502], [20, 750, 230, 752]]
    assert ink_nodes(ink, word, min_side=91, join=0) == [[200, 250, 402, 502]]  # the strokes stay apart
    assert ink_nodes(ink, [], min_side=91, join=3)[0] == [600, 50, 840, 150]  # not erased: a node
    assert ink_nodes(np.zeros((10, 10), dtype=bool), [], min_side=1) == []


def test_drawing_elements_are_the_words_then_the_nodes_and_never_an_arrow():
    ink = np.zeros((200, 200), dtype=bool)
    ink[50:150, 50] = True
    boxes, classes = drawing_elements(ink, ["12", "FIG.", "2"], [[10, 10, 30, 30], [500, 900, 600, 950],
                                                                 [620, 900, 650, 950]], min_node_side=50)  # fmt: skip
    assert classes == [NODE_LABEL, FIGURE_LABEL, NODE]
    assert boxes == [[10, 10, 30, 30], [500, 900, 650, 950], [250, 250, 255, 750]]
    assert PATCH_CLASSES.index("arrow") not in classes

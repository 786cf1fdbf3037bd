"""`dataset_builder.layout_elements` against brute-force overlaps computed here with exact fractions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dataset_builder.layout_elements import PATCH_CLASSES, box_areas, patch_grid, patch_labels, token_nodes


def brute_force_grid(boxes, grid):
    """(n, grid * grid): the intersection of each box and each patch, computed cell by cell, has a positive area."""
    side = Fraction(1000, grid)
    result = np.zeros((len(boxes), grid * grid), dtype=bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        x0, y0, x1, y1 = (Fraction(v) for v in (x0, y0, x1, y1))
        for row in range(grid):
            for column in range(grid):
                width = min(x1, (column + 1) * side) - max(x0, column * side)
                height = min(y1, (row + 1) * side) - max(y0, row * side)
                result[i, row * grid + column] = width > 0 and height > 0
    return result


def brute_force_nodes(token_boxes, node_boxes, grid):
    tokens, nodes = brute_force_grid(token_boxes, grid), brute_force_grid(node_boxes, grid)
    result = []
    for token in tokens:
        best, best_area = -1, None
        for index, (node, (x0, y0, x1, y1)) in enumerate(zip(nodes, node_boxes)):
            area = max(0, x1 - x0) * max(0, y1 - y0)
            if (token & node).any() and (best_area is None or area < best_area):
                best, best_area = index, area
        result.append(best)
    return result


def random_boxes(generator, count):
    corners = generator.integers(-20, 1021, size=(count, 2, 2))
    return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).tolist()


EDGE_BOXES = [
    [0, 0, 1000, 1000],  # the whole figure
    [0, 0, 125, 125],  # exactly the 3 x 3 top-left patches of grid 24 (125 = 3 * 1000 / 24)
    [125, 125, 126, 126],  # starts on a patch edge: only the patch it enters
    [100, 100, 125, 125],  # ends on a patch edge: not the patch it only touches
    [500, 500, 500, 900],  # no width: no patch
    [300, 300, 200, 400],  # x1 < x0: no patch
    [990, 990, 1200, 1200],  # sticks out of the figure: only the last patch
    [-50, -50, 1, 1],  # sticks out on the other side: only the first
    [10.5, 20.25, 41.7, 41.6],  # fractional, around the first edge (1000 / 24 = 41.666...)
]


@pytest.mark.parametrize("grid", [24, 8, 7, 1])
def test_patch_grid_equals_brute_force(grid):
    boxes = EDGE_BOXES + random_boxes(np.random.default_rng(grid), 40)
    got = patch_grid(boxes, grid)
    assert got.dtype == bool and got.shape == (len(boxes), grid * grid)
    np.testing.assert_array_equal(got, brute_force_grid(boxes, grid))


def test_patch_grid_edges_and_order():
    got = patch_grid(EDGE_BOXES[:4])
    assert got[0].all()
    assert sorted(np.flatnonzero(got[1])) == [0, 1, 2, 24, 25, 26, 48, 49, 50]  # row-major
    assert list(np.flatnonzero(got[2])) == [3 * 24 + 3]
    assert list(np.flatnonzero(got[3])) == [2 * 24 + 2]
    assert patch_grid([]).shape == (0, 576)


def test_patch_grid_where_the_authors_grid_is_off_by_one():
    # x from 10 to 20 px of 384: columns 0 and 1 (16-px patches); patch_cls_gt.py:31 gives int(20 - 10) // 16 + 1 = 1
    box = [10 / 384 * 1000, 0, 20 / 384 * 1000, 8 / 384 * 1000]
    assert list(np.flatnonzero(patch_grid([box]))) == [0, 1]
    # inside one patch: one patch (text_block_align_gt.py:25 gives none)
    assert list(np.flatnonzero(patch_grid([[1, 1, 2, 2]]))) == [0]


def test_patch_grid_bad_boxes_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        patch_grid([[0, 0, 1], [0, 0, 1]])
    with pytest.raises(ValueError, match="box 1 is not finite"):
        patch_grid([[0, 0, 1, 1], [0, float("nan"), 1, 1]])
    with pytest.raises(ValueError, match="grid must be at least 1"):
        patch_grid([[0, 0, 1, 1]], grid=0)


def test_patch_labels_are_the_union_of_each_class_grid():
    generator = np.random.default_rng(0)
    boxes = random_boxes(generator, 30)
    classes = generator.integers(0, len(PATCH_CLASSES), size=30).tolist()
    got = patch_labels(boxes, classes)
    assert got.shape == (576, 5) and got.dtype == bool
    grids = brute_force_grid(boxes, 24)
    for index in range(len(PATCH_CLASSES)):
        expected = np.zeros(576, dtype=bool)
        for box_grid, box_class in zip(grids, classes):
            if box_class == index:
                expected |= box_grid
        np.testing.assert_array_equal(got[:, index], expected)
    assert not patch_labels([], []).any() and patch_labels([], []).shape == (576, 5)


def test_patch_labels_bad_classes():
    with pytest.raises(ValueError, match="class 5 of box 1 is not an index of PATCH_CLASSES"):
        patch_labels([[0, 0, 10, 10], [0, 0, 10, 10]], [0, 5])
    with pytest.raises(ValueError, match="2 boxes but 1 classes"):
        patch_labels([[0, 0, 10, 10], [0, 0, 10, 10]], [0])


@pytest.mark.parametrize("grid", [24, 6])
def test_token_nodes_equal_brute_force(grid):
    generator = np.random.default_rng(grid)
    tokens = EDGE_BOXES + random_boxes(generator, 20)
    small = generator.integers(0, 900, size=(25, 2))
    tokens += np.concatenate([small, small + generator.integers(1, 60, size=(25, 2))], axis=1).tolist()
    nodes = random_boxes(generator, 6) + [[0, 0, 50, 50], [0, 0, 50, 50], [500, 500, 500, 600]]  # a tie; no area
    got = token_nodes(tokens, nodes, grid)
    assert got.dtype == np.int64 and got.shape == (len(tokens),)
    assert got.tolist() == brute_force_nodes(tokens, nodes, grid)
    assert got[4] == -1 and got[5] == -1  # the tokens without area


def test_token_nodes_smallest_area_and_first_of_ties():
    nodes = [[0, 0, 1000, 1000], [0, 0, 200, 200], [0, 0, 200, 200], [900, 900, 1000, 1000]]
    assert token_nodes([[10, 10, 20, 20], [950, 950, 960, 960], [500, 500, 510, 510]], nodes).tolist() == [1, 3, 0]
    assert token_nodes([[10, 10, 20, 20]], []).tolist() == [-1]
    assert token_nodes([], nodes).shape == (0,)
    assert box_areas([[0, 0, 10, 20], [5, 5, 1, 9]]).tolist() == [200.0, 0.0]

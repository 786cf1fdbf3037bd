"""Layout elements on the 24 x 24 patch grid: which patches a box covers, the patch classes, each token's node."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PATCH_CLASSES", "box_areas", "patch_grid", "patch_labels", "token_nodes"]

# The five classes of the authors' layout detector, in its category-id order (node is 0:
# PatentMME/scripts/text_block_align_gt.py:81 and get_num_nodes.py:19 take category 0 as the node).
PATCH_CLASSES = ("node", "node_label", "figure_label", "text", "arrow")

Boxes = Sequence[Sequence[float]] | np.ndarray  # (n, 4) [x0, y0, x1, y1]
COORDINATE_RANGE = 1000  # boxes are in LayoutLMv3's 0-1000 coordinates of the whole (square-resized) figure


def _as_boxes(boxes: Boxes, what: str = "boxes") -> np.ndarray:
    """`boxes` as a float64 array of shape (n, 4), or a ValueError naming what is wrong."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what}: expected a list of [x0, y0, x1, y1] boxes, got an array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: box {int(np.flatnonzero(~np.isfinite(array).all(1))[0])} is not finite")
    return array


def _spans(low: np.ndarray, high: np.ndarray, grid: int) -> np.ndarray:
    """(n, grid) bool: whether [low, high] of each box meets cell k = [k, k + 1] * 1000 / grid in a positive length.

    Compared as `low * grid < (k + 1) * 1000` and `high * grid > k * 1000`, exact for integer coordinates."""
    cells = np.arange(grid, dtype=np.float64)
    meets = (low[:, None] * grid < (cells + 1) * COORDINATE_RANGE) & (high[:, None] * grid > cells * COORDINATE_RANGE)
    return meets & (high > low)[:, None]


def patch_grid(boxes: Boxes, grid: int = 24) -> np.ndarray:
    """Which patches each box overlaps with a positive area.

    Args:
        boxes: (n, 4) `[x0, y0, x1, y1]` in 0-1000 coordinates of the figure; a box with `x1 <= x0` or `y1 <= y0`
            has no area and overlaps no patch; parts outside 0-1000 overlap nothing.
        grid: patches per side (24 for a 384-px image and 16-px patches).

    Returns:
        bool array of shape (n, grid * grid); patch `j = row * grid + column` (row-major, LayoutLMv3's order of
        the patch embeddings after the CLS), 0-based.

    Unlike the authors' grids (PatentMME/scripts/patch_cls_gt.py:19-31, text_block_align_gt.py:17-29) this is the
    true overlap: they count a row's columns from the box width (`int(x_max - x_min) // 16 + 1`, :31 and :29) instead
    of from the columns of its two edges, so a box from x = 10 to 20 (in 384 px) misses column 1 and a box from 0 to
    16 gets a column it only touches; text_block_align_gt.py:25 stops one row early (`>=`), so a box inside one
    column loses its last row and a box inside one patch gets no patch at all.
    """
    if grid < 1:
        raise ValueError(f"grid must be at least 1, got {grid}")
    array = _as_boxes(boxes)
    rows = _spans(array[:, 1], array[:, 3], grid)  # (n, grid)
    columns = _spans(array[:, 0], array[:, 2], grid)  # (n, grid)
    return (rows[:, :, None] & columns[:, None, :]).reshape(len(array), grid * grid)


def patch_labels(boxes: Boxes, classes: Sequence[int] | np.ndarray, grid: int = 24) -> np.ndarray:
    """The multi-hot patch classes of one figure (the PCH targets).

    Args:
        boxes: (n, 4) layout elements in 0-1000 coordinates (`patch_grid`).
        classes: (n,) indices into `PATCH_CLASSES`.

    Returns:
        bool array of shape (grid * grid, len(PATCH_CLASSES)): `[j, c]` is true when an element of class `c`
        overlaps patch `j`.
    """
    covered = patch_grid(boxes, grid)  # (n, grid * grid)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if len(classes) != len(covered):
        raise ValueError(f"patch_labels: {len(covered)} boxes but {len(classes)} classes")
    bad = (classes < 0) | (classes >= len(PATCH_CLASSES))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"patch_labels: class {int(classes[index])} of box {index} is not an index of PATCH_CLASSES {PATCH_CLASSES}"
        )
    one_hot = np.eye(len(PATCH_CLASSES), dtype=bool)[classes]  # (n, classes)
    return (covered.T.astype(np.int64) @ one_hot.astype(np.int64)) > 0


def box_areas(boxes: Boxes) -> np.ndarray:
    """(n,) float64: the area of each box in 0-1000 coordinates (0 for an empty box)."""
    array = _as_boxes(boxes)
    return np.clip(array[:, 2] - array[:, 0], 0, None) * np.clip(array[:, 3] - array[:, 1], 0, None)


def token_nodes(token_boxes: Boxes, node_boxes: Boxes, grid: int = 24) -> np.ndarray:
    """Each OCR token's node for text-node alignment (TNA): the smallest node box by area that shares a patch
    with the token (ties: the first node); -1 when none does.

    Args:
        token_boxes: (n_tokens, 4) and node_boxes: (n_nodes, 4), both in 0-1000 coordinates.

    Returns:
        int64 array of shape (n_tokens,), indices into `node_boxes` or -1.

    The authors (PatentMME/scripts/text_block_align_gt.py:93-100) compare the nodes' patch counts, not their areas,
    on their off-by-one grids (`patch_grid`), over the nodes sorted by (y_min, x_min, y_max, x_max) (:72), and mark
    a token without a node -100.
    """
    tokens = patch_grid(token_boxes, grid)  # (n_tokens, grid * grid)
    nodes = patch_grid(node_boxes, grid)  # (n_nodes, grid * grid)
    shares = (tokens.astype(np.int64) @ nodes.T.astype(np.int64)) > 0  # (n_tokens, n_nodes)
    areas = np.where(shares, box_areas(node_boxes)[None, :], np.inf)  # (n_tokens, n_nodes)
    if areas.shape[1] == 0:
        return np.full(len(tokens), -1, dtype=np.int64)
    best = np.argmin(areas, axis=1)  # the first of equal minima
    return np.where(shares.any(axis=1), best, -1).astype(np.int64)

"""The scribble robot of the DAVIS interactive protocol.

It draws what a person would draw to correct a prediction, the way the DAVIS
interactive framework's robot (``InteractiveScribblesRobot``, defaults of its
evaluation service) does, step for step:

1. per object id (0 = background) the error region ``(gt == id) & (pred != id)``;
2. a morphological opening with a disk of radius
   ``min(kernel_size * sqrt(area) * 0.5, max_kernel_radius)``, shrunk by 0.9
   while the opening is empty, skipped when the radius is 1 or less (the disk of
   a non-integer radius is skimage's off-centre ``disk(r)``, as there);
3. the skeleton by ``medial_axis`` of the opened region padded by one pixel;
4. a graph joining skeleton pixels within ``sqrt(2)``, weighted by distance;
5. per connected piece, cycles broken by removing the heaviest edge of each
   cycle found, pieces of fewer than ``min_nb_nodes`` nodes dropped;
6. the longest path of each piece by two breadth-first searches;
7. a Bezier curve of ``nb_points`` points through it, ``x / W`` and ``y / H``;
8. one scribble per kept piece, all on one frame.

Ties are broken exactly where the framework breaks them: the neighbour order of
the graph (scikit-learn's ``radius_neighbors_graph``, whose order decides which
cycle is found first and which of several equally long paths is kept) and
networkx's traversal order. The one deliberate difference: the framework's
``medial_axis`` call breaks ties with an unseeded generator (scikit-image >=
0.19), so the official robot is not deterministic; here every skeleton uses the
generator seeded with ``seed``, which is what the framework does once its
tie-breaking is fixed (``medial_axis(..., rng=seed)``). Scribbles carry
``start_time = end_time = 0``: the framework writes its own wall-clock compute
times there, which would make robot files differ from run to run.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import networkx as nx
import numpy as np
from scipy.special import comb
from skimage.morphology import disk, medial_axis

from vosbench.io.scribbles import empty_scribbles

log = logging.getLogger(__name__)

SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class RobotParams:
    """The robot's parameters; defaults are the DAVIS interactive evaluation service's."""

    kernel_size: float = 0.2
    max_kernel_radius: float = 16.0
    min_nb_nodes: int = 4
    nb_points: int = 1000

    def __post_init__(self) -> None:
        if not 0 <= self.kernel_size < 1:
            raise ValueError(f"kernel_size must be in [0, 1), got {self.kernel_size}")
        if self.min_nb_nodes < 1 or self.nb_points < 2:
            raise ValueError("min_nb_nodes must be >= 1 and nb_points >= 2")


def open_error_region(mask: np.ndarray, params: RobotParams = RobotParams()) -> np.ndarray:
    """Step 2: the opened error region (uint8 0/1), or the region itself when the radius is <= 1.

    When every opening down to radius 1 is empty the last (empty) opening is
    returned, as the framework does: such a region gets no scribble.
    """
    mask = np.asarray(mask, dtype=np.uint8)
    radius = min(params.kernel_size * math.sqrt(int(np.count_nonzero(mask))) * 0.5, params.max_kernel_radius)
    opened = mask
    while radius > 1.0:
        kernel = disk(radius).astype(np.uint8)
        # cv2 erode/dilate with the kernel's default anchor (size // 2) and the default
        # border that never wins equal skimage's rank.minimum / rank.maximum (what the
        # framework uses), which ignore pixels outside the image and centre the footprint
        # at size // 2, except where an off-centre footprint lies wholly outside the
        # image: the rank filter gives 0 there, cv2's erosion the border value.
        eroded = cv2.erode(mask, kernel)
        inside = cv2.dilate(np.ones_like(mask), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        eroded[inside == 0] = 0
        opened = cv2.dilate(eroded, kernel)
        if opened.any():
            break
        radius *= 0.9
    return opened


def skeleton(mask: np.ndarray, params: RobotParams = RobotParams(), seed: int = 0) -> np.ndarray:
    """Steps 2-3: the medial axis of the opened error region, ties broken by `seed`."""
    opened = open_error_region(mask, params)
    padded = np.pad(opened.astype(bool), 1, mode="constant", constant_values=False)
    out = np.zeros_like(padded)
    ys, xs = np.nonzero(padded)
    if ys.size == 0:
        return out[1:-1, 1:-1]
    # The medial axis of the region's bounding box with a margin of two background pixels
    # (or up to the padded border) equals that of the whole frame: distances, 3x3 lookups and
    # the row-major order of the region's pixels (hence the seeded tie-breaker) are unchanged.
    y0, y1 = max(int(ys.min()) - 2, 0), min(int(ys.max()) + 3, padded.shape[0])
    x0, x1 = max(int(xs.min()) - 2, 0), min(int(xs.max()) + 3, padded.shape[1])
    out[y0:y1, x0:x1] = medial_axis(padded[y0:y1, x0:x1], rng=seed)
    return out[1:-1, 1:-1]


def _neighbour_order_graph(points: np.ndarray) -> nx.Graph:
    """Step 4: skeleton pixels joined within sqrt(2), built in the framework's neighbour order."""
    from sklearn.neighbors import radius_neighbors_graph

    matrix = radius_neighbors_graph(points, SQRT2, mode="distance")
    return nx.from_scipy_sparse_array(matrix)


def skeleton_graph(skel: np.ndarray) -> tuple[nx.Graph, np.ndarray] | None:
    """Step 4: the graph of the skeleton and the (x, y) pixel of each node (row-major order)."""
    ys, xs = np.nonzero(skel)
    if xs.size == 0:
        return None
    points = np.column_stack([xs, ys])
    return _neighbour_order_graph(points), points


def acyclic_pieces(graph: nx.Graph, min_nb_nodes: int = 4) -> list[nx.Graph]:
    """Step 5: connected pieces with every cycle broken at its heaviest edge, small pieces dropped."""
    pieces = []
    for component in nx.connected_components(graph):
        piece = graph.subgraph(component).copy()
        while True:
            try:
                cycle = nx.find_cycle(piece)
            except nx.NetworkXNoCycle:
                break
            weights = np.asarray([graph[u][v]["weight"] for u, v in cycle])
            piece.remove_edge(*cycle[int(weights.argmax())])
        if len(piece) >= min_nb_nodes:
            pieces.append(piece)
    return pieces


def longest_path(tree: nx.Graph) -> list[int]:
    """Step 6: the nodes of a longest path of a tree, by two breadth-first searches."""
    start = next(iter(tree.nodes()))
    distance = nx.single_source_shortest_path_length(tree, start)
    far = max(distance.items(), key=lambda item: item[1])[0]
    paths = nx.single_source_shortest_path(tree, far)
    return list(max(paths.values(), key=len))


def bezier_curve(points: np.ndarray, nb_points: int = 1000) -> np.ndarray:
    """Step 7: `nb_points` samples of the Bezier curve with control points `points` ((N, 2)).

    At most 1,000 samples; a path with more points than samples is returned as is.
    The curve runs from the last control point to the first, as the framework's does.
    """
    nb_points = min(nb_points, 1000)
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {points.shape}")
    n_points = len(points)
    if n_points > nb_points:
        return points
    t = np.linspace(0.0, 1.0, nb_points).reshape(1, -1)
    i = np.arange(n_points).reshape(-1, 1)
    n = n_points - 1
    bernstein = comb(n, i) * (t ** (n - i)) * (1 - t) ** i
    return bernstein.T.dot(points)


def worst_frame(gt: np.ndarray, pred: np.ndarray, nb_objects: int) -> int:
    """The frame of lowest J averaged over objects 1..nb_objects (first one on ties)."""
    scores = np.empty((len(gt), nb_objects), dtype=np.float64)
    for k in range(nb_objects):
        g = gt == k + 1
        p = pred == k + 1
        union = np.count_nonzero(g | p, axis=(1, 2))
        inter = np.count_nonzero(g & p, axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            scores[:, k] = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return int(scores.mean(axis=1).argmin())


class ScribbleRobot:
    """Draws correcting scribbles on one frame of a prediction; deterministic for a given seed."""

    def __init__(self, params: RobotParams | None = None, seed: int = 0):
        self.params = params or RobotParams()
        self.seed = int(seed)

    def object_paths(self, error_mask: np.ndarray) -> list[np.ndarray]:
        """Steps 2-7 for one error region: the scribble paths in pixel coordinates ((N, 2) x, y)."""
        if not np.any(error_mask):
            return []
        skel = skeleton(error_mask, self.params, self.seed)
        built = skeleton_graph(skel)
        if built is None:
            return []
        graph, points = built
        pieces = acyclic_pieces(graph, self.params.min_nb_nodes)
        return [bezier_curve(points[longest_path(piece)], self.params.nb_points) for piece in pieces]

    def frame_scribbles(self, gt_frame: np.ndarray, pred_frame: np.ndarray, nb_objects: int) -> list[dict[str, Any]]:
        """The scribbles of one frame: for ids 0..nb_objects, one per kept skeleton piece."""
        height, width = gt_frame.shape
        size = np.asarray([width, height], dtype=np.float64)
        gt_frame = np.asarray(gt_frame)
        pred_frame = np.asarray(pred_frame)
        out: list[dict[str, Any]] = []
        for obj_id in range(nb_objects + 1):
            error = (gt_frame == obj_id) & (pred_frame != obj_id)
            for path in self.object_paths(error):
                out.append({"path": (path / size).tolist(), "object_id": int(obj_id),
                            "start_time": 0, "end_time": 0})
        return out

    def interact(self, sequence: str, pred_masks: np.ndarray, gt_masks: np.ndarray, nb_objects: int | None = None,
                 frame: int | None = None) -> dict[str, Any]:
        """Scribbles (DAVIS format) correcting `pred_masks` on `frame` (default: the worst frame by J)."""
        gt_masks = np.asarray(gt_masks)
        pred_masks = np.asarray(pred_masks)
        if gt_masks.shape != pred_masks.shape or gt_masks.ndim != 3:
            raise ValueError(f"gt and pred must be (T, H, W) of one shape, got {gt_masks.shape} and {pred_masks.shape}")
        if nb_objects is None:
            ids = np.unique(gt_masks)
            nb_objects = int(np.count_nonzero((ids > 0) & (ids < 255)))
        if frame is None:
            frame = worst_frame(gt_masks, pred_masks, nb_objects)
        scribbles = empty_scribbles(sequence, len(gt_masks))
        scribbles["scribbles"][frame] = self.frame_scribbles(gt_masks[frame], pred_masks[frame], nb_objects)
        log.debug("robot: %d scribble(s) on frame %d of %s", len(scribbles["scribbles"][frame]), frame, sequence)
        return scribbles

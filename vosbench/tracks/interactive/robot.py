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

Ties are broken exactly where the framework, on the stack the DAVIS interactive
challenges ran (Python 3.7, numpy 1.21, scikit-image 0.18, scikit-learn 0.20,
networkx 2.4), breaks them:

- ``medial_axis`` orders pixels of equal distance and cornerness by a
  permutation of the region's pixels; scikit-image <= 0.18 drew it from
  ``np.random.RandomState(0).permutation(n)``: **the official scribbles** (the
  default, ``seed=None``). scikit-image >= 0.19 draws it from an unseeded
  generator (the framework is then not deterministic); ``seed=k`` uses
  ``np.random.default_rng(k).permutation(n)``, i.e. ``medial_axis(rng=k)``: a
  deterministic robot, **not the official scribbles**.
- the neighbour order of the skeleton graph (which cycle is found first, which
  of several equally long paths is kept) is scikit-learn 0.20's
  ``radius_neighbors_graph``: brute force (index order) up to 11 pixels, else a
  KD-tree (leaf size 30) whose answers come in the order of its index array,
  built by a last-element-pivot quickselect. It is ported here
  (`_kdtree_index_order`); scikit-learn >= 0.24 builds its tree with
  ``nth_element`` and answers in another order.
- networkx's traversal order (networkx >= 3.2 traverses as 2.4 did).

Scribbles carry ``start_time = end_time = 0``: the framework writes its own
wall-clock compute times there, which would make robot files differ from run to run.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import cv2
import networkx as nx
import numpy as np
from skimage.morphology import disk, medial_axis

from vosbench.io.scribbles import bezier_curve, empty_scribbles

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


class _LegacyTieBreak(np.random.Generator):
    """A generator whose ``permutation`` is ``RandomState(0).permutation``: scikit-image <= 0.18's tie-break.

    scikit-image >= 0.19 draws the tie-break of ``medial_axis`` as
    ``default_rng(rng).permutation(np.arange(n))``; ``default_rng`` hands a Generator
    back unchanged, so this one gives the permutation scikit-image <= 0.18 used.
    """

    def __init__(self) -> None:
        super().__init__(np.random.PCG64(0))
        self.calls = 0

    def permutation(self, x):  # type: ignore[override]
        self.calls += 1
        return np.random.RandomState(0).permutation(x)


def _tie_break(n: int, seed: int | None) -> np.ndarray:
    """The permutation of a region's n pixels that orders ties in ``medial_axis``."""
    if seed is None:
        return np.random.RandomState(0).permutation(np.arange(n))
    return np.random.default_rng(int(seed)).permutation(np.arange(n))


def _pattern_of(index: int) -> np.ndarray:
    return np.array([[index & 2 ** k for k in range(r * 3, r * 3 + 3)] for r in range(3)], bool)


@functools.lru_cache(maxsize=1)
def _medial_axis_tables() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's lookup tables of ``medial_axis`` (the same for every image): built once."""
    from scipy import ndimage as ndi

    eight = np.ones((3, 3), bool)
    centre = (np.arange(512) & 2 ** 4).astype(bool)
    changes = np.array([ndi.label(_pattern_of(k), eight)[1] != ndi.label(_pattern_of(k & ~(2 ** 4)), eight)[1]
                        for k in range(512)])
    few = np.array([np.sum(_pattern_of(k)) < 3 for k in range(512)])
    table = np.ascontiguousarray(centre & (changes | few), dtype=np.uint8)
    cornerness = np.array([9 - np.sum(_pattern_of(k)) for k in range(512)])
    return table, cornerness


def _compiled_medial_axis_parts():
    """scikit-image's compiled pieces of ``medial_axis`` (private names: None when they moved)."""
    try:
        from skimage.morphology._skeletonize import _skeletonize_loop, _table_lookup
    except ImportError:  # pragma: no cover - a scikit-image that reorganised its internals
        return None
    return _skeletonize_loop, _table_lookup


def _medial_axis(region: np.ndarray, seed: int | None) -> np.ndarray:
    """``medial_axis(region)`` with the tie-break of `seed` (None: scikit-image <= 0.18's).

    It builds scikit-image's lookup tables once instead of at every call (most of the
    public function's time on a robot's small regions) and runs its compiled thinning
    loop; the public function is used when those internals are not found. Both give
    the same skeleton (tests/test_robot.py checks it).
    """
    parts = _compiled_medial_axis_parts()
    if parts is None:
        if seed is not None:
            return medial_axis(region, rng=int(seed))
        legacy = _LegacyTieBreak()
        out = medial_axis(region, rng=legacy)
        if legacy.calls != 1:
            raise RuntimeError("this scikit-image's medial_axis no longer draws its tie-break from "
                               "rng.permutation: the official (scikit-image <= 0.18) tie-break cannot be applied")
        return out
    skeletonize_loop, table_lookup = parts
    from scipy import ndimage as ndi

    table, cornerness = _medial_axis_tables()
    masked = np.asarray(region, dtype=bool)
    distance = ndi.distance_transform_edt(masked)
    corner_score = table_lookup(masked, cornerness)
    i, j = np.nonzero(masked)   # row-major, as np.mgrid[...][masked]
    i = np.ascontiguousarray(i, dtype=np.intp)
    j = np.ascontiguousarray(j, dtype=np.intp)
    order = np.lexsort((_tie_break(i.size, seed), corner_score[masked], distance[masked]))
    result = np.ascontiguousarray(masked, np.uint8)
    skeletonize_loop(result, i, j, np.ascontiguousarray(order, dtype=np.int32), table)
    return result.astype(bool)


def skeleton(mask: np.ndarray, params: RobotParams = RobotParams(), seed: int | None = None) -> np.ndarray:
    """Steps 2-3: the medial axis of the opened error region.

    seed None: the official tie-break (scikit-image <= 0.18); an integer k: ``medial_axis(rng=k)``.
    """
    opened = open_error_region(mask, params)
    padded = np.pad(opened.astype(bool), 1, mode="constant", constant_values=False)
    out = np.zeros_like(padded)
    ys, xs = np.nonzero(padded)
    if ys.size == 0:
        return out[1:-1, 1:-1]
    # The medial axis of the region's bounding box with a margin of two background pixels
    # (or up to the padded border) equals that of the whole frame: distances, 3x3 lookups and
    # the row-major order and count of the region's pixels (to which the tie-break's
    # permutation is assigned) are unchanged.
    y0, y1 = max(int(ys.min()) - 2, 0), min(int(ys.max()) + 3, padded.shape[0])
    x0, x1 = max(int(xs.min()) - 2, 0), min(int(xs.max()) + 3, padded.shape[1])
    out[y0:y1, x0:x1] = _medial_axis(padded[y0:y1, x0:x1], seed)
    return out[1:-1, 1:-1]


def _lomuto_select(segment: list[int], keys: list[float], split: int) -> None:
    """scikit-learn 0.20's ``partition_node_indices``: quickselect, last element as pivot, in place."""
    left, right = 0, len(segment) - 1
    while True:
        pivot = keys[segment[right]]
        mid = left
        for i in range(left, right):
            if keys[segment[i]] < pivot:
                segment[i], segment[mid] = segment[mid], segment[i]
                mid += 1
        segment[mid], segment[right] = segment[right], segment[mid]
        if mid == split:
            return
        if mid < split:
            left = mid + 1
        else:
            right = mid - 1


def _kdtree_index_order(points: np.ndarray, leaf_size: int = 30) -> list[int]:
    """The index array of scikit-learn 0.20's ``KDTree(points, leaf_size)`` after its build.

    Each node splits its points at the middle (``n // 2``) along the dimension of largest
    spread (the first on ties) by `_lomuto_select`; nodes are numbered heap-wise and
    the tree has ``2 ** n_levels - 1`` of them, ``n_levels = int(log2(max(1, (n - 1) /
    leaf_size)) + 1)``. A radius query visits the leaves left to right, so it returns
    its neighbours in the order of this array.
    """
    n = len(points)
    order = list(range(n))
    n_levels = int(math.log2(max(1.0, (n - 1) / leaf_size)) + 1)
    n_nodes = 2 ** n_levels - 1
    columns = [points[:, 0].astype(np.float64).tolist(), points[:, 1].astype(np.float64).tolist()]
    arrays = [np.asarray(c) for c in columns]
    stack = [(0, 0, n)]
    while stack:
        node, start, end = stack.pop()
        if 2 * node + 1 >= n_nodes or end - start < 2:
            continue
        segment = order[start:end]
        idx = np.asarray(segment)
        spreads = [float(a[idx].max() - a[idx].min()) for a in arrays]
        dim = 1 if spreads[1] > spreads[0] else 0
        half = (end - start) // 2
        _lomuto_select(segment, columns[dim], half)
        order[start:end] = segment
        stack.append((2 * node + 2, start + half, end))
        stack.append((2 * node + 1, start, start + half))
    return order


def _neighbour_order_graph(points: np.ndarray) -> nx.Graph:
    """Step 4: skeleton pixels joined within sqrt(2), in the framework's neighbour order.

    As ``nx.from_scipy_sparse_matrix(radius_neighbors_graph(points, sqrt(2), mode="distance"))``
    with scikit-learn 0.20 and networkx 2.4: nodes 0..n-1, then for each row i (ascending)
    the edges to its neighbours in the order the neighbour search returns them (index
    order for brute force, up to 11 points; the KD-tree's index-array order above).
    Re-adding an edge keeps its place, so only edges to later nodes change the order.
    """
    n = len(points)
    # sklearn 0.20 picks brute force when n_neighbors (5) >= n // 2
    rank = np.arange(n) if 5 >= n // 2 else np.argsort(np.asarray(_kdtree_index_order(points)), kind="stable")
    lookup = {(int(x), int(y)): k for k, (x, y) in enumerate(points)}
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    edges = []
    for k, (x, y) in enumerate(points.tolist()):
        later = []
        for dx, dy, w in ((1, 0, 1.0), (-1, 1, SQRT2), (0, 1, 1.0), (1, 1, SQRT2)):
            j = lookup.get((x + dx, y + dy))
            if j is not None:
                later.append((int(rank[j]), j, w))
        later.sort()
        edges.extend((k, j, w) for _, j, w in later)
    graph.add_weighted_edges_from(edges)
    return graph


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
    """Draws correcting scribbles on one frame of a prediction; deterministic.

    seed: None (default) draws the official scribbles (the challenges' tie-break,
    scikit-image <= 0.18's ``RandomState(0).permutation``); an integer k breaks the
    skeleton's ties with ``default_rng(k).permutation``, a deterministic robot that is
    **not the official one**.
    """

    def __init__(self, params: RobotParams | None = None, seed: int | None = None):
        self.params = params or RobotParams()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be None (the official tie-break) or an integer, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    # The framework's robot keeps its parameters as attributes that evaluation scripts set
    # (``sess.connector.service.robot.min_nb_nodes = ...``); each setter checks the value.
    def _set(self, **change: Any) -> None:
        self.params = dataclasses.replace(self.params, **change)

    kernel_size = property(lambda self: self.params.kernel_size, lambda self, v: self._set(kernel_size=v))
    max_kernel_radius = property(lambda self: self.params.max_kernel_radius,
                                 lambda self, v: self._set(max_kernel_radius=v))
    min_nb_nodes = property(lambda self: self.params.min_nb_nodes, lambda self, v: self._set(min_nb_nodes=v))
    nb_points = property(lambda self: self.params.nb_points, lambda self, v: self._set(nb_points=v))

    def skeleton_paths(self, error_mask: np.ndarray) -> list[np.ndarray]:
        """Steps 2-6 for one error region: the longest path of each kept skeleton piece ((N, 2) int x, y).

        These are the control points of the scribbles' Bezier curves, in the robot's order.
        """
        if not np.any(error_mask):
            return []
        skel = skeleton(error_mask, self.params, self.seed)
        built = skeleton_graph(skel)
        if built is None:
            return []
        graph, points = built
        pieces = acyclic_pieces(graph, self.params.min_nb_nodes)
        return [points[longest_path(piece)] for piece in pieces]

    def object_paths(self, error_mask: np.ndarray) -> list[np.ndarray]:
        """Steps 2-7 for one error region: the scribble paths in pixel coordinates ((N, 2) x, y)."""
        return [bezier_curve(path, self.params.nb_points) for path in self.skeleton_paths(error_mask)]

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

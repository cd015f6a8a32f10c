"""Slow, literal versions of the pieces of temporal stability T, for testing the fast ones.

Each function follows the description in `vosbench.metrics.temporal` one step
at a time with plain loops: the contour is walked edge by edge on the crack
grid with a visited map, pieces are joined at junctions by the same rules,
corners are placed one by one, Douglas-Peucker recurses on an explicit stack,
holes are told apart by nesting (point in polygon), the shape context counts
pair by pair with ``math.atan2`` and ``math.fmod``, the chi-square cost loops
over bins, and the matching is a textbook Dijkstra on the grid graph with
``heapq``. Only meant for small masks.
"""
from __future__ import annotations

import heapq
import math

import numpy as np

from vosbench.metrics.temporal import (
    SC_ANGULAR_BINS,
    SC_R_INNER,
    SC_R_OUTER,
    SC_RADIAL_BINS,
    SIMPLIFY_PRE_TOLERANCE,
    SIMPLIFY_TOLERANCE,
    UPSAMPLE_STEP,
)

_EPS = 2.2204e-16


# --------------------------------------------------------------------------- contours

def _boundary_sets(mask: np.ndarray):
    """Boundary edges (doubled-grid midpoints) and junction corners of a mask, by looking at every pixel pair."""
    h, w = mask.shape

    def px(r: int, c: int) -> bool:
        return 0 <= r < h and 0 <= c < w and bool(mask[r, c])

    edges = set()
    for r in range(h):
        for c in range(w + 1):          # vertical edge between (r, c-1) and (r, c)
            if px(r, c - 1) != px(r, c):
                edges.add((2 * r + 1, 2 * c))
    for r in range(h + 1):
        for c in range(w):              # horizontal edge between (r-1, c) and (r, c)
            if px(r - 1, c) != px(r, c):
                edges.add((2 * r, 2 * c + 1))
    junctions = []
    for r in range(1, h):
        for c in range(1, w):
            X, Y = 2 * r, 2 * c
            if all(e in edges for e in ((X - 1, Y), (X + 1, Y), (X, Y - 1), (X, Y + 1))):
                junctions.append((X, Y))
    return edges, junctions


def _walk(first_edge, start_corner, edges, junction_ids, visited):
    """Walk from `start_corner` through `first_edge` until a junction; returns (edge midpoints, end corner)."""
    path = []
    edge, corner = first_edge, start_corner
    while True:
        visited.add(edge)
        path.append(edge)
        nxt = (2 * edge[0] - corner[0], 2 * edge[1] - corner[1])   # the other end of the edge
        if nxt in junction_ids:
            return path, nxt
        X, Y = nxt
        # Plain corner: exactly one other boundary edge, looked for in the order +X, -X, +Y, -Y.
        for cand in ((X + 1, Y), (X - 1, Y), (X, Y + 1), (X, Y - 1)):
            if cand in edges and cand not in visited:
                edge, corner = cand, nxt
                break
        else:
            raise AssertionError("open contour")


def reference_pieces(mask: np.ndarray):
    """Pieces (start junction id, end junction id, midpoints) and junction positions, as the official tracer."""
    edges, junctions = _boundary_sets(mask)
    junction_ids = {pos: k + 1 for k, pos in enumerate(junctions)}
    positions = list(junctions)
    visited: set = set()
    pieces = []
    stack = []
    for pos in junctions:
        X, Y = pos
        for e in ((X, Y + 1), (X + 1, Y), (X, Y - 1), (X - 1, Y)):   # pushed right, down, left, up
            stack.append((junction_ids[pos], e))
    while stack:
        jid, e = stack.pop()
        if e in visited:
            continue
        path, end = _walk(e, positions[jid - 1], edges, junction_ids, visited)
        pieces.append((jid, junction_ids[end], path))
    h, w = mask.shape
    for r in range(h):
        for c in range(w + 1):
            e = (2 * r + 1, 2 * c)
            if e in edges and e not in visited:
                top = (2 * r, 2 * c)
                positions.append(top)
                junction_ids[top] = len(positions)
                path, end = _walk(e, top, edges, junction_ids, visited)
                assert end == top
                pieces.append((len(positions), len(positions), path))
    return pieces, positions


def reference_join(pieces, n_junctions):
    """Closed curves (start junction, midpoints) from pieces; the official join rules, written out plainly."""
    todo = {j: set() for j in range(1, n_junctions + 1)}
    for k, (a, b, _) in enumerate(pieces):
        todo[a].add(k)
        todo[b].add(k)
    todo = {j: s for j, s in todo.items() if s}
    curves = []

    def other(k, j):
        a, b, _ = pieces[k]
        return b if j == a else a

    def touching_mid(k, j):
        a, _, mids = pieces[k]
        return mids[0] if a == j else mids[-1]

    def remove(k, j):
        for jj in (j, other(k, j)):
            if jj in todo:
                todo[jj].discard(k)
                if not todo[jj]:
                    del todo[jj]

    def close_loop(j, walk):
        start = [jj for jj, _ in walk].index(j)
        mids = []
        for jj, k in walk[start:]:
            a, _, m = pieces[k]
            mids.extend(m if a == jj else m[::-1])
        del walk[start:]
        curves.append((j, mids))

    while todo:
        j = max(todo)
        k = min(todo[j])
        remove(k, j)
        walk = [(j, k)]
        nxt = other(k, j)
        if nxt == j:
            close_loop(nxt, walk)
        while walk:
            j = nxt
            options = sorted(todo[j])
            choice = options[0]
            a, b = touching_mid(choice, j), touching_mid(k, j)
            if a[0] == b[0] or a[1] == b[1]:       # never continue straight through a junction
                choice = options[1]
            k = choice
            remove(k, j)
            walk.append((j, k))
            nxt = other(k, j)
            if nxt in [jj for jj, _ in walk]:
                close_loop(nxt, walk)
                if walk:
                    k = walk[-1][1]
    return curves


def reference_corners(start, mids):
    corners = [tuple(start)]
    for m in mids:
        last = corners[-1]
        corners.append((2 * m[0] - last[0], 2 * m[1] - last[1]))
    return corners


def reference_segment_distance2(s1, s2, p) -> float:
    v = (s2[0] - s1[0], s2[1] - s1[1])
    w = (p[0] - s1[0], p[1] - s1[1])
    cw = w[0] * v[0] + w[1] * v[1]
    if cw <= 0:
        return float((p[0] - s1[0]) ** 2 + (p[1] - s1[1]) ** 2)
    cv = v[0] * v[0] + v[1] * v[1]
    if cv <= cw:
        return float((p[0] - s2[0]) ** 2 + (p[1] - s2[1]) ** 2)
    fraction = float(np.float32(cw) / np.float32(cv))
    proj = (s1[0] + fraction * v[0], s1[1] + fraction * v[1])
    return (p[0] - proj[0]) ** 2 + (p[1] - proj[1]) ** 2


def reference_douglas_peucker(points, tolerance):
    """Radial pre-pass then Douglas-Peucker on an explicit stack, as psimpl."""
    tol2 = tolerance * tolerance
    pts = [tuple(float(v) for v in p) for p in points]
    reduced = [pts[0]]
    for p in pts[1:-1]:
        if (p[0] - reduced[-1][0]) ** 2 + (p[1] - reduced[-1][1]) ** 2 < tol2:
            continue
        reduced.append(p)
    reduced.append(pts[-1])
    keys = [False] * len(reduced)
    keys[0] = keys[-1] = True
    stack = [(0, len(reduced) - 1)]
    while stack:
        first, last = stack.pop()
        best, best_d2 = 0, 0.0
        for cur in range(first + 1, last):
            d2 = reference_segment_distance2(reduced[first], reduced[last], reduced[cur])
            if d2 < best_d2:
                continue
            best, best_d2 = cur, d2
        if best != last and best_d2 > tol2:
            keys[best] = True
            stack.append((best, last))
            stack.append((first, best))
    return [p for p, k in zip(reduced, keys) if k]


def _inside(point, polygon) -> bool:
    """Even-odd point in polygon (the point is never on an edge here)."""
    x, y = point
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if xc > x:
                inside = not inside
    return inside


def reference_mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """All simplified contours as ``(row, column)`` int arrays, in the official order (see `temporal.mask_contours`)."""
    mask = np.asarray(mask, dtype=bool)
    pieces, positions = reference_pieces(mask)
    curves = reference_join(pieces, len(positions))
    raw = [reference_corners(positions[j - 1], mids) for j, mids in curves]
    out = []
    for corners in raw:
        # Nesting: a curve inside an odd number of the others is a hole. Test with a point just
        # off its first edge, on the side of the polygon interior (a corner may be shared).
        (x0, y0), (x1, y1) = corners[0], corners[1]
        mid = ((x0 + x1) / 2, (y0 + y1) / 2)
        normal = (y1 - y0, -(x1 - x0))
        probe_a = (mid[0] + 0.25 * normal[0], mid[1] + 0.25 * normal[1])
        probe_b = (mid[0] - 0.25 * normal[0], mid[1] - 0.25 * normal[1])
        probe = probe_a if _inside(probe_a, corners) else probe_b
        depth = sum(_inside(probe, other) for other in raw if other is not corners)
        is_hole = depth % 2 == 1
        simple = reference_douglas_peucker(corners, SIMPLIFY_PRE_TOLERANCE)
        simple = reference_douglas_peucker(simple, SIMPLIFY_TOLERANCE)
        total = np.float32(0)
        for i in range(len(simple)):
            j = (i + 1) % len(simple)
            term = (simple[j][0] - simple[i][0]) * (simple[j][1] + simple[i][1])
            total = np.float32(total + np.float32(term))
        if (total > 0) == is_hole:
            simple = simple[::-1]
        if len(simple) > 3:
            out.append(np.array([(int(x) // 2, int(y) // 2) for x, y in simple], dtype=np.int64))
    return out


def reference_longest_contour(mask: np.ndarray):
    """The first contour with the most points."""
    best = None
    for c in reference_mask_contours(mask):
        if best is None or c.shape[0] > best.shape[0]:
            best = c
    return best


# --------------------------------------------------------------------------- descriptors

def reference_upsample(contour, step: float = UPSAMPLE_STEP) -> np.ndarray:
    pts = [(float(x), float(y)) for x, y in contour]
    out = [pts[0]]
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        dx, dy = x1 - x0, y1 - y0
        length = math.sqrt(dx * dx + dy * dy)
        if length > step:
            parts = math.ceil(length / step)
            vx, vy = dx / parts, dy / parts
            cx, cy = out[-1]
            for _ in range(parts - 1):
                cx, cy = cx + vx, cy + vy
                out.append((cx, cy))
        out.append((x1, y1))
    return np.array(out, dtype=np.float64)


def reference_shape_context(points) -> np.ndarray:
    pts = [(float(x), float(y)) for x, y in np.asarray(points, dtype=np.float64)]
    n = len(pts)
    dist = [[math.sqrt((pts[j][0] - pts[i][0]) ** 2 + (pts[j][1] - pts[i][1]) ** 2) for j in range(n)]
            for i in range(n)]
    mean = float(np.mean(np.array(dist)))
    edges = np.logspace(np.log10(SC_R_INNER), np.log10(SC_R_OUTER), SC_RADIAL_BINS)
    hist = np.zeros((n, SC_ANGULAR_BINS * SC_RADIAL_BINS), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            rn = dist[i][j] / mean
            ring = sum(1 for e in edges if rn < e)
            if ring == 0:
                continue
            theta = math.atan2(pts[j][1] - pts[i][1], pts[j][0] - pts[i][0])
            theta = math.fmod(math.fmod(theta, 2 * math.pi) + 2 * math.pi, 2 * math.pi)
            sector = min(int(math.floor(theta / (2 * math.pi / SC_ANGULAR_BINS))), SC_ANGULAR_BINS - 1)
            hist[i, (ring - 1) * SC_ANGULAR_BINS + sector] += 1
    return hist


def reference_chi2_cost(h1, h2) -> np.ndarray:
    a = [row / (row.sum() + _EPS) for row in np.asarray(h1, dtype=np.float64)]
    b = [row / (row.sum() + _EPS) for row in np.asarray(h2, dtype=np.float64)]
    out = np.zeros((len(a), len(b)))
    for i, ra in enumerate(a):
        for j, rb in enumerate(b):
            out[i, j] = 0.5 * sum((x - y) ** 2 / (x + y + _EPS) for x, y in zip(ra, rb))
    return out


# --------------------------------------------------------------------------- matching

def reference_min_path(cost):
    """Dijkstra from (0, 0) on the grid with edges down, right and diagonal costing their target."""
    n1, n2 = cost.shape
    dist = {(0, 0): 0.0}
    parent = {}
    heap = [(0.0, 0, 0)]
    done = set()
    while heap:
        d, i, j = heapq.heappop(heap)
        if (i, j) in done:
            continue
        done.add((i, j))
        for ni, nj in ((i, j + 1), (i + 1, j), (i + 1, j + 1)):
            if ni < n1 and nj < n2:
                nd = d + cost[ni, nj]
                if nd < dist.get((ni, nj), math.inf):
                    dist[(ni, nj)] = nd
                    parent[(ni, nj)] = (i, j)
                    heapq.heappush(heap, (nd, ni, nj))
    path = [(n1 - 1, n2 - 1)]
    while path[-1] != (0, 0):
        path.append(parent[path[-1]])
    best = min(range(len(path) - 1), key=lambda k: (cost[path[k]], k))
    return path, path[best]


def reference_match(cost) -> list[tuple[int, int]]:
    n1, n2 = cost.shape
    _, (si, sj) = reference_min_path(cost)
    shifted = np.roll(np.roll(cost, -(sj + 1), axis=1), -(si + 1), axis=0)
    path, _ = reference_min_path(shifted)
    pairs = [((i + si + 1) % n1, (j + sj + 1) % n2) for i, j in path]
    for side in (0, 1):
        kept = {}
        for p in pairs:
            key = p[side]
            if key not in kept or cost[p] < cost[kept[key]]:
                kept[key] = p
        pairs = [kept[k] for k in sorted(kept)]
    return pairs


def reference_pair_cost(mask_a, mask_b) -> float:
    """Unscaled cost of one frame pair, every step by the slow path."""
    ca, cb = reference_longest_contour(mask_a), reference_longest_contour(mask_b)
    if ca is None or cb is None:
        return float("nan")
    ha = reference_shape_context(reference_upsample(ca))
    hb = reference_shape_context(reference_upsample(cb))
    cost = reference_chi2_cost(ha, hb)
    pairs = reference_match(cost)
    return float(np.mean([cost[p] for p in pairs]))

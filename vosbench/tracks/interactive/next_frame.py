"""Which frame the robot scribbles next: the DAVIS interactive framework's rule, ties included.

The framework takes the first frame of ``metric.argsort()`` that is allowed (metric per
frame: the mean over objects of 0.5 J + 0.5 F, or of J, or of F). Frames often tie
(perfect frames, empty frames), and then the order among them is that of numpy's
default sort, which the challenges ran with numpy <= 1.24: the classic introsort
(median-of-3 quicksort, insertion sort below 17 elements, heapsort past a depth of
2 log2 n). Among ties it returns the lowest index only while the whole array is at most
16 elements long; above that its partitioning decides. numpy >= 1.25 on x86 sorts with
SIMD and orders ties differently, and a stable sort is not the framework's order
either. `classic_argsort` is that introsort, step for step.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

SMALL_QUICKSORT = 15


def _less(a: float, b: float) -> bool:
    # numpy's float order: NaN sorts last
    return a < b or (b != b and a == a)


def _heapsort(v: list[float], idx: list[int], lo: int, n: int) -> None:
    """numpy's ``aheapsort`` on idx[lo:lo + n] (1-based heap over that slice)."""
    def get(k: int) -> int:
        return idx[lo + k - 1]

    def put(k: int, value: int) -> None:
        idx[lo + k - 1] = value

    for start in range(n >> 1, 0, -1):
        tmp = get(start)
        i, j = start, start << 1
        while j <= n:
            if j < n and _less(v[get(j)], v[get(j + 1)]):
                j += 1
            if _less(v[tmp], v[get(j)]):
                put(i, get(j))
                i, j = j, j + j
            else:
                break
        put(i, tmp)
    while n > 1:
        tmp = get(n)
        put(n, get(1))
        n -= 1
        i, j = 1, 2
        while j <= n:
            if j < n and _less(v[get(j)], v[get(j + 1)]):
                j += 1
            if _less(v[tmp], v[get(j)]):
                put(i, get(j))
                i, j = j, j + j
            else:
                break
        put(i, tmp)


def classic_argsort(values: Iterable[float]) -> np.ndarray:
    """``np.argsort(values)`` as numpy <= 1.24 returns it (its ``aquicksort`` for float64)."""
    v = [float(x) for x in np.asarray(values, dtype=np.float64).ravel()]
    num = len(v)
    idx = list(range(num))
    if num < 2:
        return np.asarray(idx, dtype=np.intp)
    stack: list[tuple[int, int, int]] = []
    pl, pr = 0, num - 1
    cdepth = (num.bit_length() - 1) * 2
    while True:
        if cdepth < 0:
            _heapsort(v, idx, pl, pr - pl + 1)
        else:
            while pr - pl > SMALL_QUICKSORT:
                pm = pl + ((pr - pl) >> 1)
                if _less(v[idx[pm]], v[idx[pl]]):
                    idx[pm], idx[pl] = idx[pl], idx[pm]
                if _less(v[idx[pr]], v[idx[pm]]):
                    idx[pr], idx[pm] = idx[pm], idx[pr]
                if _less(v[idx[pm]], v[idx[pl]]):
                    idx[pm], idx[pl] = idx[pl], idx[pm]
                vp = v[idx[pm]]
                pi, pj = pl, pr - 1
                idx[pm], idx[pj] = idx[pj], idx[pm]
                while True:
                    pi += 1
                    while _less(v[idx[pi]], vp):
                        pi += 1
                    pj -= 1
                    while _less(vp, v[idx[pj]]):
                        pj -= 1
                    if pi >= pj:
                        break
                    idx[pi], idx[pj] = idx[pj], idx[pi]
                pk = pr - 1
                idx[pi], idx[pk] = idx[pk], idx[pi]
                cdepth -= 1
                # the larger part waits on the stack
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
            for pi in range(pl + 1, pr + 1):   # insertion sort
                vi = idx[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and _less(vp, v[idx[pj - 1]]):
                    idx[pj] = idx[pj - 1]
                    pj -= 1
                idx[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    return np.asarray(idx, dtype=np.intp)


def allowed_frames(nb_frames: int, used: Iterable[int], candidates: Iterable[int] | None = None) -> set[int]:
    """The frames the robot may scribble next: the candidates (every frame when None or empty)
    minus the frames it already scribbled in this sample; all candidates again when none is left.

    As the framework, a sample whose every frame was scribbled forgets them all.
    """
    pool = set(int(c) for c in candidates) if candidates else set(range(nb_frames))
    used = set(int(u) for u in used)
    if len(used) == nb_frames:
        used = set()
    return (pool - used) or pool


def next_frame(metric: np.ndarray, allowed: set[int]) -> int:
    """The first frame of the classic argsort of `metric` that is allowed."""
    for k in classic_argsort(metric):
        if int(k) in allowed:
            return int(k)
    raise ValueError(f"no allowed frame among {len(metric)} frames (allowed: {sorted(allowed)})")

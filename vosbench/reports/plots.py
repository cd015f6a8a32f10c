"""Pictures of runs, drawn with matplotlib's object API (no pyplot state, any backend), saved as PNG.

Every function returns a `matplotlib.figure.Figure`; `save_png` writes one atomically.
In a notebook a returned Figure displays itself.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vosbench.io.atomic import atomic_write
from vosbench.io.masks import DAVIS_PALETTE, VOID_LABEL, read_mask
from vosbench.reports.attributes import ALL_SEQUENCES
from vosbench.reports.tables import frame_table, sequence_table

# One colour per method, the same in every picture of a report.
METHOD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf"]


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    return {m: METHOD_COLOURS[i % len(METHOD_COLOURS)] for i, m in enumerate(methods)}


def _methods(tidy: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(tidy["method"]))
    if methods is None:
        return present
    missing = [m for m in methods if m not in present]
    if missing:
        raise KeyError(f"methods {missing} are not in the frame (methods: {present})")
    return list(methods)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def save_png(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write the figure as a PNG, atomically."""
    path = Path(path)
    atomic_write(path, png_bytes(fig, dpi=dpi))
    return path


def _grouped_bars(ax, table: pd.DataFrame, methods: list[str], colours: dict[str, str]) -> None:
    n = max(len(methods), 1)
    width = 0.8 / n
    x = np.arange(len(table.index))
    for i, method in enumerate(methods):
        ax.bar(x + (i - (n - 1) / 2) * width, table[method].to_numpy(dtype=float), width,
               label=method, color=colours[method])
    ax.set_xticks(x)
    ax.set_xticklabels([str(i) for i in table.index], rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def sequence_bars(tidy: pd.DataFrame, measure: str = "J&F", methods: Sequence[str] | None = None,
                  title: str | None = None) -> Figure:
    """Per-sequence bars of a measure (mean over frames, then objects), one colour per method."""
    methods = _methods(tidy, methods)
    table = sequence_table(tidy, measure)[methods]
    # Wide enough for the bars, but no wider than a page shows at a readable size.
    fig = Figure(figsize=(min(13.0, max(6.0, 0.25 * len(table) * max(len(methods), 1) + 2)), 4.4))
    ax = fig.add_subplot()
    _grouped_bars(ax, table, methods, method_colours(list(dict.fromkeys(tidy["method"]))))
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{measure} (mean over frames)")
    ax.set_title(title or f"{measure} per sequence")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def frame_curve(tidy: pd.DataFrame, sequence: str, measure: str = "J", methods: Sequence[str] | None = None,
                object: int | None = None, title: str | None = None) -> Figure:
    """A measure over the frames of one sequence, one line per method."""
    methods = _methods(tidy, methods)
    table = frame_table(tidy, sequence, measure, object=object)
    colours = method_colours(list(dict.fromkeys(tidy["method"])))
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    for method in methods:
        if method in table:
            series = table[method].dropna()
            ax.plot(series.index, series.to_numpy(), label=method, color=colours[method], lw=1.6)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("frame")
    what = f"{measure}" + (f" of object {object}" if object is not None else "")
    ax.set_ylabel(what)
    ax.set_title(title or f"{what} over time: {sequence}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def attribute_bars(table: pd.DataFrame, methods: Sequence[str] | None = None, measure: str = "J&F",
                   title: str | None = None) -> Figure:
    """Bars of `jf_per_attribute`'s table: one group per attribute, one colour per method."""
    method_columns = [c for c in table.columns if c not in ("name", "n_sequences")]
    methods = list(methods) if methods is not None else method_columns
    fig = Figure(figsize=(max(7.0, 0.18 * len(table) * max(len(methods), 1) + 2), 4.2))
    ax = fig.add_subplot()
    labelled = table.copy()
    labelled.index = [f"{code}\n({int(n)})" if code != ALL_SEQUENCES else f"all\n({int(n)})"
                      for code, n in zip(table.index, table["n_sequences"])]
    _grouped_bars(ax, labelled, methods, method_colours(method_columns))
    ax.set_xticklabels(labelled.index, rotation=0, ha="center", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"{measure} (mean over objects)")
    ax.set_xlabel("attribute (number of sequences)")
    ax.set_title(title or f"{measure} per attribute")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def interactive_curves(curves: Mapping[str, Any], threshold: float = 60.0) -> Figure:
    """J&F against time of several interactive runs on one plot (the interactive track's own figure).

    curves: {method: curve}; a curve is a `vosbench.metrics.interactive.Curve`, the summary
    mapping an interactive run writes (``{"curve": {"time": [...], "J_AND_F": [...]}}`` or its
    inner ``{"time", "J_AND_F"}``), or a pair (time, J&F).
    threshold: the time at which J&F is marked (the DAVIS J&F@60 s).
    """
    from vosbench.reports.interactive_plots import curve_figure

    return curve_figure({name: as_curve(c) for name, c in curves.items()}, threshold=threshold)


def as_curve(curve: Any):
    """A `Curve` from any of the forms `interactive_curves` accepts."""
    from vosbench.metrics.interactive import Curve

    if isinstance(curve, Curve):
        return curve
    if isinstance(curve, Mapping):
        inner = curve.get("curve", curve)
        time, value = inner["time"], inner.get("J_AND_F", inner.get("value"))
    else:
        time, value = curve
    return Curve(time=np.asarray(time, dtype=np.float64), value=np.asarray(value, dtype=np.float64))


# -- overlays ---------------------------------------------------------------------


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5, contour_thickness: int = 2,
            palette: np.ndarray = DAVIS_PALETTE) -> np.ndarray:
    """Masks drawn on a frame as DAVIS draws them: each object's pixels blended half-and-half with
    its palette colour, and its outline in that colour. Void (255) is left undrawn.

    image: ``(H, W, 3) uint8`` RGB; mask: ``(H, W)`` object ids. Returns ``(H, W, 3) uint8``.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} do not match")
    out = image.copy()
    ids = [int(i) for i in np.unique(mask) if i != 0 and i != VOID_LABEL]
    for object_id in ids:
        colour = np.asarray(palette[object_id % len(palette)], dtype=np.float32)
        region = mask == object_id
        out[region] = np.round(image[region].astype(np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
    if contour_thickness > 0:
        for object_id in ids:
            colour = tuple(int(c) for c in palette[object_id % len(palette)])
            contours, _ = cv2.findContours((mask == object_id).astype(np.uint8), cv2.RETR_TREE,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour, contour_thickness)
    return out


def _as_mask(source: Any, frame: str, binary: bool) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    folder = Path(source)
    path = folder / f"{frame}.png"
    return read_mask(path, binary=binary)


def _union_box(masks: Sequence[np.ndarray], margin: float = 0.25) -> tuple[slice, slice] | None:
    """Rows and columns of the box around every object of every mask, grown by `margin` of its size."""
    union = np.zeros(masks[0].shape, dtype=bool)
    for mask in masks:
        union |= (mask != 0) & (mask != VOID_LABEL)
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    if rows.size == 0:
        return None
    h, w = union.shape
    pad_r = int((rows[-1] - rows[0] + 1) * margin) + 8
    pad_c = int((cols[-1] - cols[0] + 1) * margin) + 8
    return (slice(max(0, rows[0] - pad_r), min(h, rows[-1] + 1 + pad_r)),
            slice(max(0, cols[0] - pad_c), min(w, cols[-1] + 1 + pad_c)))


def overlay_figure(dataset: Any, sequence: str, frame: str | int, masks: Mapping[str, Any],
                   *, ground_truth: bool = True, columns: int = 3, alpha: float = 0.5,
                   zoom: bool = False) -> Figure:
    """Overlays of several methods' masks on one frame, beside the ground truth.

    dataset: a `vosbench.io.Dataset` (frames and ground truth are read from it).
    frame: a frame name (``"00042"``) or its position in the sequence.
    masks: {method: masks} where masks is the method's results folder (holding
        ``<sequence>/<frame>.png``) or an ``(H, W)`` array of ids.
    """
    names = dataset.frame_names(sequence)
    if isinstance(frame, (int, np.integer)):
        frame = names[int(frame)]
    frame = str(frame)
    if frame not in names:
        raise KeyError(f"frame {frame!r} is not in sequence {sequence!r}")
    image = dataset.read_frame(sequence, frame)
    panels: list[tuple[str, np.ndarray]] = []
    binary = bool(getattr(dataset, "binary", False))
    if ground_truth:
        panels.append(("ground truth", dataset.read_annotation(sequence, frame)))
    for method, source in masks.items():
        mask = source if isinstance(source, np.ndarray) else _as_mask(Path(source) / sequence, frame, binary)
        panels.append((method, mask))
    h, w = image.shape[:2]
    if any(m.shape != (h, w) for _, m in panels):
        # Ground truth and frames can differ in size (e.g. 240p frames, 480p masks): draw at the mask size.
        image = cv2.resize(image, panels[0][1].shape[::-1], interpolation=cv2.INTER_AREA)
    drawn = [(title, overlay(image, mask.astype(np.int64), alpha=alpha)) for title, mask in panels]
    box = _union_box([m for _, m in panels]) if zoom else None
    if box is not None:
        drawn = [(title, picture[box]) for title, picture in drawn]
    columns = max(1, min(columns, len(drawn)))
    rows = int(np.ceil(len(drawn) / columns))
    aspect = drawn[0][1].shape[0] / drawn[0][1].shape[1]
    fig = Figure(figsize=(4.2 * columns, 4.2 * aspect * rows + 0.6), layout="constrained")
    for k, (title, picture) in enumerate(drawn):
        ax = fig.add_subplot(rows, columns, k + 1)
        ax.imshow(picture)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle(f"{sequence}, frame {frame}" + (" (zoomed on the objects)" if box is not None else ""),
                 fontsize=11)
    return fig


def scribbles_figure(dataset: Any, sequence: str, scribbles: Sequence[Mapping[str, Any]], *, columns: int = 3,
                     alpha: float = 0.35) -> Figure:
    """The scribbles of each interaction on the frame they were drawn on, over the ground truth.

    scribbles: one scribble mapping per interaction (``{"scribbles": [per-frame lists of
        {"path": [[x, y], ...], "object_id": k}]}``, coordinates normalised to [0, 1]), e.g. the
        ``scribbles[(sequence, idx)]`` list of an interactive session's result. Each line is drawn
        in its object's palette colour; background scribbles (object 0) in white.
    """
    names = dataset.frame_names(sequence)
    panels = []
    for k, given in enumerate(scribbles, start=1):
        frames = [t for t, paths in enumerate(given.get("scribbles", [])) if paths]
        for t in frames:
            panels.append((k, t, given["scribbles"][t]))
    if not panels:
        raise ValueError(f"no scribble to draw for {sequence!r}")
    columns = max(1, min(columns, len(panels)))
    rows = int(np.ceil(len(panels) / columns))
    first = dataset.read_frame(sequence, names[panels[0][1]])
    aspect = first.shape[0] / first.shape[1]
    fig = Figure(figsize=(4.2 * columns, 4.2 * aspect * rows + 0.6), layout="constrained")
    for n, (k, t, paths) in enumerate(panels):
        image = dataset.read_frame(sequence, names[t])
        mask = dataset.read_annotation(sequence, names[t]).astype(np.int64)
        if mask.shape != image.shape[:2]:
            image = cv2.resize(image, mask.shape[::-1], interpolation=cv2.INTER_AREA)
        h, w = mask.shape
        ax = fig.add_subplot(rows, columns, n + 1)
        ax.imshow(overlay(image, mask, alpha=alpha, contour_thickness=0))
        for stroke in paths:
            points = np.asarray(stroke["path"], dtype=float)
            if points.size == 0:
                continue
            object_id = int(stroke.get("object_id", 0))
            colour = (np.asarray(DAVIS_PALETTE[object_id % len(DAVIS_PALETTE)]) / 255.0 if object_id
                      else np.ones(3))
            ax.plot(points[:, 0] * w, points[:, 1] * h, color=colour, lw=2.2, solid_capstyle="round")
            ax.plot(points[:, 0] * w, points[:, 1] * h, color="black", lw=0.6, alpha=0.6)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(f"interaction {k}: frame {names[t]}", fontsize=10)
        ax.set_axis_off()
    fig.suptitle(f"{sequence}: scribbles over the ground truth", fontsize=11)
    return fig

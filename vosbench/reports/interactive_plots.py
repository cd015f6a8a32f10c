"""The J&F-versus-time curve of interactive runs, as a PNG (matplotlib object API, no pyplot state)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Mapping

from matplotlib.figure import Figure

from vosbench.io.atomic import atomic_write
from vosbench.metrics.interactive import Curve


def curve_figure(curves: Mapping[str, Curve], threshold: float = 60.0) -> Figure:
    """One line per run (label -> curve) with the J&F@threshold marked."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        line, = ax.plot(curve.time, curve.value, marker="o", markersize=3, label=f"{label} (AUC {curve.auc():.3f})")
        ax.plot([threshold], [curve.at(threshold)], marker="D", color=line.get_color())
    ax.axvline(threshold, color="0.6", linestyle="--", linewidth=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("J&F")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlim(left=0.0)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"J&F vs time (diamond: J&F@{threshold:g}s)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_curve(curve: Curve | Mapping[str, Curve], path: str | os.PathLike, threshold: float = 60.0,
               label: str = "method", dpi: int = 100) -> Path:
    """Write the curve (or several, label -> curve) to `path` as a PNG, atomically and reproducibly."""
    curves = {label: curve} if isinstance(curve, Curve) else dict(curve)
    fig = curve_figure(curves, threshold)
    buffer = io.BytesIO()
    # No software/date metadata, so the same curve gives the same bytes.
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    atomic_write(path, buffer.getvalue())
    return Path(path)

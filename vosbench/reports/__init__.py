"""Reports: tidy DataFrames of runs, leaderboards, per-attribute analysis, pictures and HTML.

    >>> from vosbench import reports
    >>> tidy = reports.load_runs({"osvos": "results/osvos", "mine": result}, gt="DAVIS", dataset="davis2016")
    >>> reports.summary_table(tidy)               # the official global statistics, one row per method
    >>> reports.sequence_table(tidy)              # J&F per sequence and method
    >>> reports.significance(tidy, "mine", "osvos")
    >>> reports.jf_per_attribute(tidy)            # J&F per DAVIS attribute
    >>> reports.sequence_bars(tidy)               # a matplotlib Figure

Names are imported on first use, so `import vosbench.reports` stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "tables": ["TIDY_COLUMNS", "tidy_result", "tidy_per_frame_table", "tidy_official_per_frame", "concat",
               "load_run", "load_runs", "object_table", "summary_table", "sequence_table", "frame_table",
               "compare", "significance", "pairwise_significance", "Significance"],
    "attributes": ["AttributeSet", "attribute_table", "attribute_names", "sequence_attributes",
                   "eval_t_sequences", "jf_per_attribute", "read_db_info"],
    "plots": ["sequence_bars", "frame_curve", "attribute_bars", "interactive_curves", "overlay",
              "overlay_figure", "save_png", "method_colours"],
    "leaderboard": ["Source", "record_run", "read_leaderboard", "update_leaderboard", "leaderboard_paths",
                    "reproduction_table"],
    "collect": ["build_leaderboard", "Measure"],
    "temporal_scores": ["results_t", "tidy_t", "t_mean"],
    "html": ["write_html_report"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vosbench.reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vosbench.reports.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

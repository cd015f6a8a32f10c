"""One static HTML page of a set of runs: leaderboard, per-attribute chart, curves.

The page is a single file: pictures are embedded as PNG data, the style is
inline, and there is no script, so it opens anywhere (a browser, a CI
artifact viewer, an e-mail) without a server and without network access.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from vosbench.errors import InputError
from vosbench.io.atomic import atomic_write

log = logging.getLogger(__name__)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
.table { overflow-x: auto; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; } .figure { margin: 1em 0 2em; }
"""


def _table_html(frame: pd.DataFrame, float_format: str = "{:.3f}", index: bool = True) -> str:
    formatters = {c: (lambda v, f=float_format: "–" if pd.isna(v) else f.format(v))
                  for c in frame.columns if pd.api.types.is_float_dtype(frame[c])}
    table = frame.to_html(index=index, escape=True, border=0, formatters=formatters, na_rep="–")
    return f'<div class="table">\n{table}\n</div>'


def _image_html(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure_section(title: str, fig: Any, note: str = "") -> str:
    from vosbench.reports.plots import png_bytes

    png = png_bytes(fig)
    parts = [f"<h2>{html.escape(title)}</h2>", '<div class="figure">', _image_html(png, title)]
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def _t_sequences(tidy: pd.DataFrame, attributes: Any) -> list[str] | None:
    """The sequences T counts over: all but those the attribute table flags ``eval_t`` false (DAVIS 2016)."""
    from vosbench.reports.attributes import attribute_table

    if "T" not in set(tidy["measure"]):
        return None
    try:
        table = attributes if isinstance(attributes, pd.DataFrame) else attribute_table(attributes)
    except (InputError, ValueError):
        return None
    if "eval_t" not in table:
        return None
    excluded = set(table.index[~table["eval_t"].astype(bool)])
    return [s for s in tidy["sequence"].unique() if s not in excluded]


def most_different_sequence(tidy: pd.DataFrame, measure: str = "J&F") -> str | None:
    """The sequence on which the methods' scores spread most (the best one to plot over time)."""
    from vosbench.reports.tables import sequence_table

    table = sequence_table(tidy, measure)
    if table.empty:
        return None
    spread = table.max(axis=1) - table.min(axis=1) if table.shape[1] > 1 else 1 - table.iloc[:, 0]
    return str(spread.idxmax())


def render_html_report(tidy: pd.DataFrame, *, title: str = "vosbench report",
                       leaderboard: pd.DataFrame | None = None, attributes: Any = "davis2016",
                       interactive: Mapping[str, Any] | None = None, sequences: Sequence[str] | None = None) -> str:
    """The page as text. See `write_html_report`."""
    from vosbench import __version__
    from vosbench.reports import plots
    from vosbench.reports.attributes import jf_per_attribute
    from vosbench.reports.tables import pairwise_significance, summary_table

    body: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    methods = list(dict.fromkeys(tidy["method"])) if len(tidy) else []
    n_sequences = tidy["sequence"].nunique() if len(tidy) else 0
    body.append(f'<p class="note">{len(methods)} method(s): {html.escape(", ".join(methods))}; '
                f"{n_sequences} sequence(s). Made by vosbench {html.escape(__version__)} on "
                f"{_dt.date.today().isoformat()}.</p>")

    body.append("<h2>Leaderboard</h2>")
    if leaderboard is not None and len(leaderboard):
        from vosbench.reports.leaderboard import display_table

        shown = display_table(leaderboard)
        body.append('<p class="note">Source column: <em>this run</em> = measured by vosbench; '
                    "<em>published masks, computed here</em> = published result masks scored by vosbench; "
                    "<em>published figures, quoted</em> = copied from the official leaderboard.</p>")
        body.append(_table_html(shown, index=False))
    if len(tidy):
        summary = summary_table(tidy, _t_sequences(tidy, attributes))
        body.append('<p class="note">The runs of this report, computed here from their per-frame scores '
                    "(each statistic per object over its frames, then the mean over objects; T over the "
                    "sequences the dataset marks for it).</p>")
        body.append(_table_html(summary))

    if len(tidy):
        try:
            table = jf_per_attribute(tidy, attributes) if not isinstance(attributes, pd.DataFrame) else \
                jf_per_attribute(tidy, attributes=attributes)
        except (InputError, KeyError, ValueError) as exc:  # no attributes for this dataset: keep the rest
            log.info("no per-attribute analysis: %s", exc)
            table = None
        if table is not None and len(table) > 1:
            body.append(_figure_section("J&F per attribute", plots.attribute_bars(table),
                                        "Mean J&F over the objects of the sequences with each DAVIS attribute; "
                                        "the number of sequences is under each code."))
            body.append(_table_html(table))
        else:
            body.append("<h2>J&amp;F per attribute</h2><p class=\"note\">None of these sequences carries DAVIS "
                        "attributes.</p>")
        body.append(_figure_section("J&F per sequence", plots.sequence_bars(tidy)))
        chosen = list(sequences) if sequences else [s for s in [most_different_sequence(tidy)] if s]
        for sequence in chosen:
            body.append(_figure_section(f"J over time: {sequence}", plots.frame_curve(tidy, sequence, "J"),
                                        "" if sequences else "The sequence on which the methods differ most."))
        if len(methods) > 1:
            body.append("<h2>Paired comparisons over sequences</h2>")
            body.append('<p class="note">Mean difference of per-sequence J&amp;F (first - second), Wilcoxon '
                        "signed-rank and paired t-test p-values, 95% bootstrap interval.</p>")
            body.append(_table_html(pairwise_significance(tidy), float_format="{:.3g}", index=False))
    if interactive:
        body.append(_figure_section("Interactive: J&F over time", plots.interactive_curves(interactive),
                                    "Diamonds: J&F at 60 s; AUC in the legend."))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<link rel=\"icon\" href=\"data:,\">\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def write_html_report(tidy: pd.DataFrame, out_dir: str | os.PathLike, *, title: str = "vosbench report",
                      leaderboard: pd.DataFrame | None = None, attributes: Any = "davis2016",
                      interactive: Mapping[str, Any] | None = None,
                      sequences: Sequence[str] | None = None) -> Path:
    """Write ``<out_dir>/index.html``: leaderboard, per-attribute chart and table, per-sequence bars,
    J over time, paired comparisons, and interactive curves when given.

    tidy: runs as a tidy frame (`load_runs`); leaderboard: a leaderboard table to show on top
    (`read_leaderboard`); attributes: which shipped attribute table (or a table);
    interactive: {method: curve} of interactive runs; sequences: sequences to plot over time
    (default: the one where the methods differ most).
    """
    page = render_html_report(tidy, title=title, leaderboard=leaderboard, attributes=attributes,
                              interactive=interactive, sequences=sequences)
    path = Path(out_dir) / "index.html"
    atomic_write(path, page)
    return path

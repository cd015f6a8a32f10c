"""Run a script written for the DAVIS interactive framework on vosbench, unchanged.

    python -m vosbench.interactive.compat eval_script.py [its arguments...]

serves the script's ``davisinteractive`` imports (``davisinteractive.session``,
``.session.session``, ``.dataset``, ``.dataset.davis``, ``.utils``, ``.utils.scribbles``,
``.utils.operations``, ``.metrics``, ``.metrics.jaccard``, ``.robot``) from
`vosbench.interactive`, then runs it as ``__main__`` with its own arguments. Within
Python, ``install()`` does the same for the rest of the process.
"""
from __future__ import annotations

import logging
import runpy
import sys
import types
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

PACKAGE = "davisinteractive"
SERVED_VERSION = "1.0.4"


class InteractiveScribblesRobot:
    """The framework's robot class: its constructor (defaults included) on vosbench's robot."""

    def __new__(cls, kernel_size: float = 0.15, max_kernel_radius: float = 16, min_nb_nodes: int = 4,
                nb_points: int = 1000):
        from vosbench.tracks.interactive.robot import RobotParams, ScribbleRobot

        return ScribbleRobot(RobotParams(kernel_size=kernel_size, max_kernel_radius=max_kernel_radius,
                                         min_nb_nodes=min_nb_nodes, nb_points=nb_points))


def modules() -> dict[str, types.ModuleType]:
    """The ``davisinteractive`` module tree, filled from vosbench."""
    import vosbench.interactive as api

    def module(name: str, doc: str, **attrs) -> types.ModuleType:
        mod = types.ModuleType(name, doc)
        mod.__dict__.update(attrs)
        return mod

    scribbles = module(f"{PACKAGE}.utils.scribbles", "vosbench.io.scribbles, served as davisinteractive's",
                       scribbles2mask=api.scribbles2mask, scribbles2points=api.scribbles2points,
                       fuse_scribbles=api.fuse_scribbles, is_empty=api.is_empty,
                       annotated_frames=api.annotated_frames, annotated_frames_object=api.annotated_frames_object,
                       bezier_curve=api.bezier_curve)
    operations = module(f"{PACKAGE}.utils.operations", "vosbench.io.scribbles, served as davisinteractive's",
                        bresenham=api.bresenham, bezier_curve=api.bezier_curve)
    utils = module(f"{PACKAGE}.utils", "davisinteractive.utils served by vosbench",
                   scribbles=scribbles, operations=operations)
    jaccard = module(f"{PACKAGE}.metrics.jaccard", "vosbench.metrics.interactive, served as davisinteractive's",
                     batched_jaccard=api.batched_jaccard, batched_f_measure=api.batched_f_measure)
    metrics = module(f"{PACKAGE}.metrics", "davisinteractive.metrics served by vosbench", jaccard=jaccard,
                     batched_jaccard=api.batched_jaccard, batched_f_measure=api.batched_f_measure)
    davis = module(f"{PACKAGE}.dataset.davis", "vosbench.interactive.Davis", Davis=api.Davis)
    dataset = module(f"{PACKAGE}.dataset", "davisinteractive.dataset served by vosbench", Davis=api.Davis, davis=davis)
    session_session = module(f"{PACKAGE}.session.session", "vosbench.interactive.DavisInteractiveSession",
                             DavisInteractiveSession=api.DavisInteractiveSession)
    session = module(f"{PACKAGE}.session", "davisinteractive.session served by vosbench",
                     DavisInteractiveSession=api.DavisInteractiveSession, session=session_session)
    robot = module(f"{PACKAGE}.robot", "vosbench's robot", InteractiveScribblesRobot=InteractiveScribblesRobot)
    root = module(PACKAGE, "The davisinteractive API, served by vosbench (vosbench.interactive.compat)",
                  __version__=f"{SERVED_VERSION}+vosbench", __path__=[], utils=utils, metrics=metrics,
                  dataset=dataset, session=session, robot=robot)
    tree = [root, utils, scribbles, operations, metrics, jaccard, dataset, davis, session, session_session, robot]
    return {m.__name__: m for m in tree}


def install() -> None:
    """Serve ``davisinteractive`` imports from vosbench in this process (replaces an installed one)."""
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    for name, mod in modules().items():
        if "." in name or name == PACKAGE:
            mod.__path__ = getattr(mod, "__path__", [])
        sys.modules[name] = mod


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    script = Path(argv[0])
    if not script.is_file():
        print(f"vosbench.interactive.compat: {script}: no such script. Fix: give the path of the Python script "
              "that imports davisinteractive.", file=sys.stderr)
        return 2
    install()
    sys.argv = [str(script)] + argv[1:]
    sys.path.insert(0, str(script.resolve().parent))
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The DAVIS interactive framework's API on vosbench: a drop-in session and the helpers scripts import.

    from vosbench.interactive import DavisInteractiveSession      # was: from davisinteractive.session import ...

A script that cannot be edited runs unchanged with ``python -m vosbench.interactive.compat
script.py [args...]``, which serves its ``davisinteractive`` imports from here.

Helpers, each with its home in vosbench and the framework's behaviour:

| framework | vosbench |
| --- | --- |
| ``utils.scribbles.scribbles2mask``, ``scribbles2points``, ``fuse_scribbles``, ``is_empty``, ``annotated_frames``, ``annotated_frames_object`` | `vosbench.io.scribbles` |
| ``utils.operations.bresenham``, ``bezier_curve`` | `vosbench.io.scribbles` |
| ``metrics.batched_jaccard``, ``batched_f_measure`` | `vosbench.metrics.interactive` |
| ``dataset.Davis`` (``Davis.dataset``, ``Davis.sets``) | `vosbench.interactive.session.Davis` |
| ``robot.InteractiveScribblesRobot`` | `vosbench.tracks.interactive.robot.ScribbleRobot` |

``fuse_scribbles`` returns a new dict and leaves both arguments unchanged (the
framework's also extends the first argument's frame lists in place).
"""
from types import SimpleNamespace

from vosbench.io import scribbles as _scribbles
from vosbench.io.scribbles import (annotated_frames, annotated_frames_object, bezier_curve, bresenham,
                                   fuse_scribbles, is_empty, scribbles2mask, scribbles2points)
from vosbench.metrics.interactive import batched_f_measure, batched_jaccard
from vosbench.interactive.session import Davis, DavisInteractiveSession, SessionError
from vosbench.tracks.interactive.engine import BudgetRule, SubmissionError

# ``from davisinteractive import utils as interactive_utils`` -> ``from vosbench.interactive import utils as ...``:
# ``interactive_utils.scribbles.scribbles2mask(...)``, ``interactive_utils.operations.bresenham(...)``.
utils = SimpleNamespace(scribbles=_scribbles, operations=SimpleNamespace(bresenham=bresenham, bezier_curve=bezier_curve))

__all__ = ["utils", "DavisInteractiveSession", "Davis", "SessionError", "SubmissionError", "BudgetRule",
           "scribbles2mask", "scribbles2points", "fuse_scribbles", "is_empty", "annotated_frames",
           "annotated_frames_object", "bresenham", "bezier_curve", "batched_jaccard", "batched_f_measure"]

"""The DAVIS interactive protocol: the scribble robot, timed sessions, the J&F-vs-time curve.

    >>> from vosbench.tracks.interactive import SessionParams, run_session
    >>> result = run_session(dataset, method, SessionParams(max_interactions=8, max_time=240))
    >>> result.summary["auc"], result.jf_at_threshold

`SampleRun` is the step engine (one sample: scribbles out, masks in) that `run_session`,
the drop-in `vosbench.interactive.DavisInteractiveSession` and any server of the
framework's protocol drive.
"""
from vosbench.tracks.interactive.engine import BudgetRule, Metric, SampleRun, Step, SubmissionError
from vosbench.tracks.interactive.next_frame import allowed_frames, classic_argsort, next_frame
from vosbench.tracks.interactive.report import REPORT_COLUMNS, SampleInfo, summarize
from vosbench.tracks.interactive.robot import RobotParams, ScribbleRobot
from vosbench.tracks.interactive.session import (InteractiveResult, Sample, SessionParams, find_samples,
                                                 run_session)

__all__ = ["RobotParams", "ScribbleRobot", "SessionParams", "Sample", "InteractiveResult",
           "find_samples", "run_session", "summarize", "SampleInfo", "REPORT_COLUMNS",
           "SampleRun", "Step", "BudgetRule", "Metric", "SubmissionError",
           "classic_argsort", "allowed_frames", "next_frame"]

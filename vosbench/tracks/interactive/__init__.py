"""The DAVIS interactive protocol: the scribble robot, timed sessions, the J&F-vs-time curve.

    >>> from vosbench.tracks.interactive import SessionParams, run_session
    >>> result = run_session(dataset, method, SessionParams(max_interactions=8, max_time=240))
    >>> result.summary["auc"], result.jf_at_threshold
"""
from vosbench.tracks.interactive.report import REPORT_COLUMNS, SampleInfo, summarize
from vosbench.tracks.interactive.robot import RobotParams, ScribbleRobot
from vosbench.tracks.interactive.session import (InteractiveResult, Sample, SessionParams, find_samples,
                                                 run_session)

__all__ = ["RobotParams", "ScribbleRobot", "SessionParams", "Sample", "InteractiveResult",
           "find_samples", "run_session", "summarize", "SampleInfo", "REPORT_COLUMNS"]

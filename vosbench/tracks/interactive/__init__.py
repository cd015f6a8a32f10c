"""The DAVIS interactive protocol: the scribble robot, timed sessions, the J&F-vs-time curve."""
from vosbench.tracks.interactive.robot import RobotParams, ScribbleRobot

__all__ = ["RobotParams", "ScribbleRobot"]

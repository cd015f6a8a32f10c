"""The protocols: semi-supervised, unsupervised (matching), interactive. evaluate -> accumulate -> summarize."""
from vosbench.tracks.evaluator import evaluate_dataset
from vosbench.tracks.params import EvalParams, Track
from vosbench.tracks.result import Result, SequenceScores

__all__ = ["evaluate_dataset", "EvalParams", "Track", "Result", "SequenceScores"]

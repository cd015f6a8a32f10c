"""Pure array functions: region J, boundary F, statistics. No files, no datasets.

Each fast kernel has a slow, obviously-correct twin in `vosbench.metrics.reference`
that the tests compare it against.
"""
from vosbench.metrics.boundary import boundary_radius, f_measure, seg2bmap
from vosbench.metrics.region import jaccard
from vosbench.metrics.frames import object_frame_scores
from vosbench.metrics.statistics import Statistics, decay, mean, recall, statistics

__all__ = ["boundary_radius", "f_measure", "seg2bmap", "jaccard", "object_frame_scores",
           "Statistics", "decay", "mean", "recall", "statistics"]

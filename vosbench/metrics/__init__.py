"""Pure array functions: region J, boundary F, temporal stability T, statistics. No files, no datasets.

Each fast kernel has a slow, obviously-correct twin in `vosbench.metrics.reference`
that the tests compare it against. Each measure is also a `vosbench.metrics.base.Metric`
class in the file of its kernels (J: `region.RegionJ`, F: `boundary.BoundaryF`,
T: `temporal.StabilityT`), registered in `vosbench.metrics.registry`.
"""
from vosbench.metrics.boundary import boundary_radius, f_measure, seg2bmap
from vosbench.metrics.region import jaccard
from vosbench.metrics.frames import object_frame_scores
from vosbench.metrics.statistics import Statistics, decay, mean, recall, statistics
from vosbench.metrics.temporal import TemporalStability, dataset_t, sequence_t, temporal_stability

__all__ = ["boundary_radius", "f_measure", "seg2bmap", "jaccard", "object_frame_scores",
           "Statistics", "decay", "mean", "recall", "statistics",
           "TemporalStability", "temporal_stability", "sequence_t", "dataset_t"]

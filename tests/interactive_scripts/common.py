"""A toy interactive model for the evaluation-loop scripts: fills the convex hull of each object's
scribbles (a background scribble erases a thick line), carries the nearest painted frame to the
others. Deterministic, numpy and OpenCV only."""
import cv2
import numpy as np


class PaintAndCarry:
    def __init__(self, nb_frames, height, width, thickness=9):
        self.painted = {}   # frame -> mask
        self.shape = (nb_frames, height, width)
        self.kernel = np.ones((thickness, thickness), np.uint8)

    def add(self, drawn):
        """drawn: (frames, H, W) ids of the scribbled pixels, -1 elsewhere (scribbles2mask)."""
        for t in np.nonzero((drawn >= 0).any(axis=(1, 2)))[0]:
            mask = self.painted.get(int(t), np.zeros(self.shape[1:], np.uint8)).copy()
            for obj in np.unique(drawn[t][drawn[t] >= 0]):
                pixels = (drawn[t] == obj).astype(np.uint8)
                grown = cv2.dilate(pixels, self.kernel)
                if obj > 0:
                    ys, xs = np.nonzero(grown)
                    hull = cv2.convexHull(np.column_stack([xs, ys]).astype(np.int32))
                    cv2.fillConvexPoly(grown, hull, 1)
                mask[grown > 0] = obj
            self.painted[int(t)] = mask

    def masks(self):
        out = np.zeros(self.shape, np.uint8)
        keys = sorted(self.painted)
        for t in range(self.shape[0]):
            if keys:
                nearest = min(keys, key=lambda k: (abs(k - t), k))
                out[t] = self.painted[nearest]
        return out

"""An evaluation loop in the style of GIS-RAmap's DAVIS interactive evaluation (written for this test).

Usage: gis_ramap_style.py DAVIS_ROOT OUTPUT_DIR
"""
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PaintAndCarry  # noqa: E402

from vosbench.interactive import DavisInteractiveSession, utils as interactive_utils, batched_jaccard  # changed

davis_root, save_dir = sys.argv[1], sys.argv[2]
min_nb_nodes = 2
test_subset = None
results = {}


def load_gt(sequence):
    folder = os.path.join(davis_root, "Annotations", "480p", sequence)
    return np.stack([np.array(Image.open(os.path.join(folder, f))) for f in sorted(os.listdir(folder))])


with DavisInteractiveSession(host="localhost", user_key=None, davis_root=davis_root, subset="val",
                             report_save_dir=save_dir, max_nb_interactions=8, max_time=None,
                             metric_to_optimize="J") as sess:
    sess.connector.service.robot.min_nb_nodes = min_nb_nodes
    seen_seq = {}
    while sess.next():
        sequence, scribbles, first_scribble = sess.get_scribbles(only_last=True)
        if first_scribble:
            gt = load_gt(sequence)
            n_objects = int(gt.max())
            model = PaintAndCarry(*gt.shape)
            n_interaction = 1
            seen_seq[sequence] = seen_seq.get(sequence, 0) + 1
            scribble_iter = sess.samples[sess.sample_idx][1]
        else:
            n_interaction += 1
        annotated_now = interactive_utils.scribbles.annotated_frames(sess.sample_last_scribble)[0]
        drawn = interactive_utils.scribbles.scribbles2mask(scribbles, gt.shape[1:])
        model.add(drawn)
        pred = model.masks()
        # the next scribble on a frame not scribbled yet, among all
        candidates = [t for t in range(len(gt)) if t != annotated_now]
        sess.submit_masks(pred, next_scribble_frame_candidates=candidates)
        jac = batched_jaccard(gt, pred, average_over_objects=False, nb_objects=n_objects)
        results.setdefault("%s_%d" % (sequence, scribble_iter), []).append(float(jac.mean()))
    report = sess.get_report()
    summary = sess.get_global_summary(save_file=os.path.join(save_dir, sess.report_name + "_summary.json"))
with open(os.path.join(save_dir, "per_sample_jaccard.json"), "w") as fp:
    json.dump(results, fp)
print("samples", len(results), "AUC", summary["auc"])

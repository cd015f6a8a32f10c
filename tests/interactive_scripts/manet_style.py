"""An evaluation loop in the style of MANet's / ATNet's DAVIS interactive test scripts (written for this test).

Usage: manet_style.py DAVIS_ROOT OUTPUT_DIR
"""
import json
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PaintAndCarry  # noqa: E402

from vosbench.interactive import DavisInteractiveSession, Davis, utils as interactive_utils  # changed line

davis_root, save_dir = sys.argv[1], sys.argv[2]
max_nb_interactions = 8
log = []
with DavisInteractiveSession(host="localhost", user_key=None, davis_root=davis_root, subset="val",
                             report_save_dir=save_dir, max_nb_interactions=max_nb_interactions, max_time=None,
                             metric_to_optimize="J") as sess:
    while sess.next():
        t_total = timeit.default_timer()
        sequence, scribbles, first_scribble = sess.get_scribbles()    # all the sample's scribbles
        if first_scribble:
            n_interaction = 1
            info = Davis.dataset[sequence]
            img_size = info["image_size"][::-1]
            num_frames = info["num_frames"]
            n_objects = info["num_objects"]
            model = PaintAndCarry(num_frames, *img_size)
            annotated_frames_list = []
        else:
            n_interaction += 1
        annotated_now = interactive_utils.scribbles.annotated_frames(sess.sample_last_scribble)[0]
        annotated_frames_list.append(annotated_now)
        drawn = interactive_utils.scribbles.scribbles2mask(scribbles, tuple(img_size))
        model.add(drawn)
        pred_masks = model.masks()
        assert pred_masks.max() <= n_objects
        sess.submit_masks(pred_masks)
        log.append((sequence, n_interaction, annotated_now, timeit.default_timer() - t_total))
    report = sess.get_report()
    summary = sess.get_global_summary(save_file=os.path.join(save_dir, "summary.json"))
with open(os.path.join(save_dir, "interactions.json"), "w") as fp:
    json.dump(log, fp)
print("interactions", len(log), "AUC", summary["auc"])

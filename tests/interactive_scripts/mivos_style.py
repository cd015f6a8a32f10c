"""An evaluation loop in the style of MiVOS's eval_interactive_davis.py (written for this test).

Usage: mivos_style.py DAVIS_ROOT OUTPUT_DIR
"""
import json
import os
import sys
from argparse import ArgumentParser

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PaintAndCarry  # noqa: E402

from vosbench.interactive import DavisInteractiveSession, scribbles2mask  # the one line that changed

parser = ArgumentParser()
parser.add_argument("davis")
parser.add_argument("output")
args = parser.parse_args()
os.makedirs(args.output, exist_ok=True)


class Processor:
    """Holds one sequence, answers each interaction with masks and the frames worth scribbling next."""

    def __init__(self, nb_frames, height, width):
        self.model = PaintAndCarry(nb_frames, height, width)
        self.interacted = set()

    def interact(self, scribbles):
        h, w = self.model.shape[1:]
        drawn = scribbles2mask(scribbles, (h, w))
        self.model.add(drawn)
        this_idx = [i for i, f in enumerate(scribbles["scribbles"]) if f]
        self.interacted.update(this_idx)
        next_candidates = [t for t in range(self.model.shape[0]) if t not in self.interacted]
        return self.model.masks(), next_candidates, this_idx


shapes = {}
root = os.path.join(args.davis, "Annotations", "480p")
for name in sorted(os.listdir(root)):
    frames = sorted(os.listdir(os.path.join(root, name)))
    w, h = Image.open(os.path.join(root, name, frames[0])).size
    shapes[name] = (len(frames), h, w)

total_iter = 0
interaction_log = []
with DavisInteractiveSession(davis_root=args.davis, report_save_dir=args.output, max_nb_interactions=8,
                             max_time=8 * 30) as sess:
    while sess.next():
        sequence, scribbles, new_seq = sess.get_scribbles(only_last=True)
        if new_seq:
            if "processor" in locals():
                del processor
            processor = Processor(*shapes[sequence])
        pred_masks, next_masks, this_idx = processor.interact(scribbles)
        interaction_log.append([sequence, sess.samples[sess.sample_idx][1], this_idx])
        sess.submit_masks(pred_masks, next_masks)
        total_iter += 1
    report = sess.get_report()
    summary = sess.get_global_summary(save_file=os.path.join(args.output, "summary.json"))
with open(os.path.join(args.output, "interactions.json"), "w") as fp:
    json.dump(interaction_log, fp)
print("interactions", total_iter, "AUC", summary["auc"])

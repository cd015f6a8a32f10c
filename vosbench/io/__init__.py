"""Reading and writing masks, datasets and scribble files. Imports nothing else of vosbench but errors."""
from vosbench.io.atomic import atomic_path, atomic_write
from vosbench.io.datasets import Dataset, DavisDataset, read_frame
from vosbench.io.masks import DAVIS_PALETTE, VOID_LABEL, read_mask, read_mask_stack, write_mask

__all__ = ["DAVIS_PALETTE", "VOID_LABEL", "read_mask", "write_mask", "read_mask_stack",
           "atomic_write", "atomic_path", "Dataset", "DavisDataset", "read_frame"]

"""Run a method over a dataset: masks in the DAVIS layout, timing, and resuming an interrupted run.

Masks go to ``out_dir/<sequence>/<frame>.png`` (palette PNGs of object ids), each
written atomically. A sequence counts as done only when its completion marker
``out_dir/<sequence>/.vosbench-done.json`` exists; the marker is written after
the sequence's last mask and records the method, its options and the time the
method took, so that

* a re-run skips finished sequences and says so, and recomputes the others;
* masks of a different method or different options are never silently reused.

Timing covers only the method's own work (producing each mask, which includes
reading the frames it asks for), not writing the PNGs.

With ``input_height`` the method is given frames (and first-frame masks) scaled to that many
rows, and its masks are scaled back (nearest neighbour) to the annotations' grid before they are
written, so they are scored, and stay usable, as any DAVIS result.

With ``jobs`` > 1 the sequences are segmented in parallel by one joblib call (any joblib
backend: loky processes here, Dask on a cluster); each worker builds its own copy of the
method once, from a picklable factory, with its share of the threads.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import pickle
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vosbench.errors import VosbenchError
from vosbench.io.atomic import atomic_write
from vosbench.io.datasets import Dataset
from vosbench.io.identity import code_revision, dataset_identity
from vosbench.io.masks import VOID_LABEL, write_mask
from vosbench.methods.base import LazyFrames, Method, Video
from vosbench.methods.device import configure_threads
from vosbench.methods.progress import showing_progress
from vosbench.tracks.parallel import joblib_backend, parallel_runner
from vosbench.tracks.params import Track

log = logging.getLogger(__name__)

MARKER_NAME = ".vosbench-done.json"
MARKER_FORMAT = 1


@dataclass
class RunRecord:
    """What one run of a method over a dataset did, for run.json and the leaderboards."""

    method: str
    track: str
    dataset: str
    split: str
    resolution: str
    device: str
    n_sequences: int
    n_frames: int
    n_objects: int
    seconds: float
    seconds_per_frame: float
    masks_dir: str
    started: str
    vosbench_version: str
    options: dict = field(default_factory=dict)
    jobs: int = 1          # workers segmenting sequences at once (seconds are still each sequence's own)
    input_height: int | None = None   # rows of the frames the method was given (None: the annotations')
    # The data (vosbench.io.identity.DatasetIdentity as a dict) and the code the masks were made with:
    # the checkout's commit and whether its files differed from it ("" / None outside a checkout).
    dataset_identity: dict = field(default_factory=dict)
    commit: str = ""
    dirty: bool | None = None
    threads: int | None = None     # torch threads of each worker (None: not set by the run)
    cpu: str = ""                  # the processor's model name (a learned method's last digits depend on it)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo on Linux, else `platform.processor()`)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _jsonable(value: Any) -> Any:
    """Options as JSON: enums by value, paths and other objects by their text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int, float)):
        return value.value
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def method_identity(method: Method) -> dict[str, Any]:
    """What must match for finished masks to be reused: the method, its class and its options."""
    cls = type(method)
    return {"method": method.name, "class": f"{cls.__module__}.{cls.__qualname__}",
            "options": _jsonable(method.options)}


def _given_masks(dataset: Dataset, sequence: str, frame_names: list[str]) -> tuple[dict[int, np.ndarray], list[int]]:
    """First-frame masks of every object (objects appearing later: on the frame they first appear).

    Void (255) pixels are not an object: they become background in what the method is given.
    """
    index = {name: t for t, name in enumerate(frame_names)}
    given: dict[int, np.ndarray] = {}
    seen: set[int] = set()
    for frame in dataset.annotated_frames(sequence):
        mask = dataset.read_annotation(sequence, frame)
        present = {int(i) for i in np.unique(mask)} - {0, VOID_LABEL}
        new = sorted(present - seen)
        if not new:
            continue
        introduced = np.where(np.isin(mask, new), mask, 0).astype(np.uint8)
        given[index[frame]] = introduced
        seen.update(new)
    return given, sorted(seen)


def _count_objects(dataset: Dataset, sequence: str) -> int:
    ids: set[int] = set()
    for frame in dataset.annotated_frames(sequence):
        ids.update(int(i) for i in np.unique(dataset.read_annotation(sequence, frame)))
    return len(ids - {0, VOID_LABEL})


def _read_marker(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("ignoring unreadable completion marker %s", path)
        return None


def _check_mask(mask: Any, shape: tuple[int, int], method: Method, sequence: str, t: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise VosbenchError(f"method {method.name!r} returned a mask of shape {mask.shape} for frame {t} of "
                            f"{sequence!r}; the frames are {shape}. A method must return (H, W) id maps "
                            f"at the frame size.")
    if mask.dtype != np.uint8:
        if not np.issubdtype(mask.dtype, np.integer) and mask.dtype != bool:
            raise VosbenchError(f"method {method.name!r} returned a {mask.dtype} mask for frame {t} of "
                                f"{sequence!r}; masks are integer object ids (uint8).")
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise VosbenchError(f"method {method.name!r} returned ids outside 0..255 for frame {t} of {sequence!r}.")
        mask = mask.astype(np.uint8)
    return mask


def _segment_sequence(method: Method, video: Video, out: Path, write_size: tuple[int, int] | None = None,
                      on_mask: Callable[[], None] | None = None) -> float:
    """Run the method over one video, write its masks (scaled to `write_size`, nearest neighbour,
    when given); return the seconds the method took. `on_mask` is called after each mask written."""
    import cv2

    shape = video.size
    n_frames = len(video.frame_names)
    seconds = 0.0
    produced = 0
    iterator = iter(method.segment(video))
    while True:
        start = time.perf_counter()
        try:
            mask = next(iterator)
        except StopIteration:
            seconds += time.perf_counter() - start
            break
        seconds += time.perf_counter() - start
        if produced >= n_frames:
            raise VosbenchError(f"method {method.name!r} returned more masks than the {n_frames} frames of "
                                f"{video.name!r}.")
        mask = _check_mask(mask, shape, method, video.name, produced)
        if write_size is not None and mask.shape != write_size:
            mask = cv2.resize(mask, (write_size[1], write_size[0]), interpolation=cv2.INTER_NEAREST)
        write_mask(out / f"{video.frame_names[produced]}.png", mask)
        produced += 1
        if on_mask is not None:
            on_mask()
    if produced != n_frames:
        raise VosbenchError(f"method {method.name!r} returned {produced} masks for the {n_frames} frames of "
                            f"{video.name!r}; it must return one per frame.")
    return seconds


def _annotation_size(dataset: Dataset, sequence: str) -> tuple[int, int]:
    return dataset.read_annotation(sequence, dataset.annotated_frames(sequence)[0]).shape[:2]


def _input_size(annotation_size: tuple[int, int], input_height: int | None) -> tuple[int, int]:
    """The grid the method works on: the annotations', or `input_height` rows at their aspect ratio
    when that is smaller (frames are never enlarged for a method)."""
    height, width = annotation_size
    if input_height is None or input_height >= height:
        return height, width
    return input_height, max(1, round(width * input_height / height))


def _frame_reader(dataset: Dataset, sequence: str, size: tuple[int, int], asked: bool = False):
    """Frames on the grid `size` the method works on: the sequence's annotations' grid, or the
    smaller one asked for (`asked`, input_height).

    A method answers on the frames' grid and is scored on the annotations', so the two must
    agree. They differ when a dataset holds the frames at another resolution than its masks
    (DAVIS 2016 train frames at 240p beside 480p masks): the frames are then resized to the
    masks, and the log says so once per sequence.
    """
    import cv2

    height, width = size
    told = []

    def read(name: str) -> np.ndarray:
        frame = dataset.read_frame(sequence, name)
        if frame.shape[:2] == (height, width):
            return frame
        if not told:
            # Asked for (input_height) is routine; frames stored at another size than the masks are news.
            log.log(logging.DEBUG if asked else logging.INFO, "%s: frames are %dx%d, the method works at %dx%d; "
                    "frames resized", sequence, frame.shape[1], frame.shape[0], width, height)
            told.append(True)
        smaller = frame.shape[0] > height
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if smaller else cv2.INTER_LINEAR)

    return read


def _segment_and_mark(method: Method, dataset: Dataset, seq: str, frames: list[str], folder: Path, track: Track,
                      identity: dict[str, Any], input_height: int | None = None,
                      on_mask: Callable[[], None] | None = None) -> tuple[float, int]:
    """Segment one sequence into `folder` and write its completion marker; (seconds, objects)."""
    # A stale or partial sequence: drop its marker first, so a crash now leaves it unfinished.
    (folder / MARKER_NAME).unlink(missing_ok=True)
    if folder.is_dir():
        for old in folder.glob("*.png"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    if track is Track.SEMI:
        given, object_ids = _given_masks(dataset, seq, frames)
        count = len(object_ids)
    else:
        given, object_ids = {}, []
        count = _count_objects(dataset, seq)
    annotation_size = _annotation_size(dataset, seq)
    size = _input_size(annotation_size, input_height)
    scaled = size != annotation_size
    if scaled:
        import cv2

        given = {t: cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) for t, m in given.items()}
    video = Video(name=seq, frames=LazyFrames(_frame_reader(dataset, seq, size, asked=scaled), frames),
                  frame_names=list(frames), given_masks=given, object_ids=object_ids)
    took = _segment_sequence(method, video, folder, write_size=annotation_size if scaled else None, on_mask=on_mask)
    atomic_write(folder / MARKER_NAME, json.dumps({
        "format": MARKER_FORMAT, "identity": identity, "track": track.value, "frames": list(frames),
        "input_height": input_height,
        "seconds": took, "n_objects": count, "device": str(method.device),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, indent=1) + "\n")
    log.debug("%s: %d frames in %.3f s", seq, len(frames), took)
    return took, count


# The method of this worker (a process, or a thread of the threading backend), built on its first
# sequence and kept for the next ones, which loky and Dask send to the same workers.
_worker = threading.local()


def _worker_method(factory: Callable[[], Method], threads: int | None) -> Method:
    key = pickle.dumps((factory, threads))
    if getattr(_worker, "key", None) != key:
        if threads is not None:
            configure_threads(threads)
        _worker.method, _worker.key = factory(), key
    return _worker.method


def _segment_task(factory: Callable[[], Method], threads: int | None, dataset: Dataset, seq: str,
                  frames: list[str], folder: Path, track: Track, identity: dict[str, Any],
                  input_height: int | None) -> tuple[str, float, int]:
    method = _worker_method(factory, threads)
    if method_identity(method) != identity:
        raise VosbenchError(f"a worker built {method_identity(method)} but the run is of {identity}: the method "
                            f"factory must build the same method with the same options.")
    took, count = _segment_and_mark(method, dataset, seq, frames, folder, track, identity, input_height)
    return seq, took, count


def segment_dataset(method: Method, dataset: Dataset, out_dir: str | Path, *, track: Track | str,
                    resume: bool = True, progress: bool = True, jobs: int = 1,
                    method_factory: Callable[[], Method] | None = None, threads: int | None = None,
                    backend: str | None = None, scheduler: str | None = None,
                    input_height: int | None = None) -> RunRecord:
    """Segment every sequence of `dataset` with `method` into `out_dir`, resuming finished sequences.

    track: the protocol the method runs under; semi-supervised methods are given
        each object's mask on the frame it first appears, unsupervised ones nothing.
    resume: reuse sequences whose completion marker matches this method and its
        options; False recomputes everything.
    jobs: sequences segmented at once (joblib's n_jobs; -1: one per core). Above 1, each worker
        builds its own method with `method_factory` (picklable, e.g. a functools.partial of
        `registry.load_method`; it must build a method identical to `method`), with an equal share
        of `threads` torch threads (None: the worker's default; on Dask the workers' machines
        always choose their own), on joblib's `backend` (None: loky processes; "dask" with `scheduler`).
    input_height: give the method frames of this many rows (e.g. 240 for a laptop's CPU), its
        masks scaled back to the annotations' grid; None: frames on the annotations' grid.
    """
    from vosbench import __version__

    track = Track(track)
    if track is Track.INTERACTIVE:
        raise VosbenchError("the interactive track is run by its own session, not by segment_dataset.")
    if method.track != track.value:
        raise VosbenchError(f"method {method.name!r} is a {method.track} method; it cannot run the "
                            f"{track.value} track.")
    if jobs != 1 and method_factory is None:
        raise VosbenchError("segmenting with jobs != 1 needs a method_factory that builds the method in each worker.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    identity = method_identity(method)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    sequences = dataset.sequence_names()
    frame_lists = {seq: dataset.frame_names(seq) for seq in sequences}

    done: dict[str, dict] = {}
    for seq in sequences:
        marker = _read_marker(out / seq / MARKER_NAME)
        if marker is None:
            continue
        if not resume:
            continue
        same = (marker.get("format") == MARKER_FORMAT and marker.get("identity") == identity
                and marker.get("track") == track.value and marker.get("frames") == frame_lists[seq]
                and marker.get("input_height") == input_height)
        if same:
            done[seq] = marker
        else:
            log.warning("%s: masks there were made by %s %s (track %s, input height %s); recomputing them "
                        "with %s %s (input height %s)", out / seq, marker.get("identity", {}).get("method", "?"),
                        json.dumps(marker.get("identity", {}).get("options", {})), marker.get("track", "?"),
                        marker.get("input_height"), identity["method"], json.dumps(identity["options"]),
                        input_height)
    todo = [seq for seq in sequences if seq not in done]
    if done:
        log.info("resuming: %d of %d sequences already segmented by %s in %s; segmenting the remaining %d%s",
                 len(done), len(sequences), method.name, out, len(todo),
                 f" ({', '.join(todo)})" if todo else "")

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        # Frames of the whole run, one by one (a method's own phases, its online fine-tuning, show
        # their own bars below it): the rate and the time left count everything the method does.
        bar = tqdm(total=sum(len(frame_lists[s]) for s in todo), desc=method.name, unit="frame", leave=False)
    seconds = sum(float(m["seconds"]) for m in done.values())
    n_objects = sum(int(m["n_objects"]) for m in done.values())
    workers = 1
    try:
        if jobs == 1:
            for seq in todo:
                if bar is not None:
                    bar.set_postfix_str(seq)
                with showing_progress(bar is not None):
                    took, count = _segment_and_mark(method, dataset, seq, frame_lists[seq], out / seq, track,
                                                    identity, input_height,
                                                    on_mask=(lambda: bar.update(1)) if bar is not None else None)
                seconds += took
                n_objects += count
        elif todo:
            from joblib import delayed, effective_n_jobs

            with joblib_backend(backend, scheduler):
                workers = effective_n_jobs(jobs)
                threads_per_job = max(1, threads // workers) if threads and backend != "dask" else None
                finished = parallel_runner(jobs)(
                    delayed(_segment_task)(method_factory, threads_per_job, dataset, seq, frame_lists[seq], out / seq,
                                           track, identity, input_height) for seq in todo)
                for seq, took, count in finished:
                    seconds += took
                    n_objects += count
                    if bar is not None:
                        bar.set_postfix_str(seq)
                        bar.update(len(frame_lists[seq]))
    finally:
        if bar is not None:
            bar.close()
    n_frames = sum(len(frame_lists[s]) for s in sequences)
    if jobs == 1:
        worker_threads = threads
    else:
        worker_threads = max(1, threads // workers) if threads and backend != "dask" else None
    revision = code_revision()
    return RunRecord(
        method=method.name, track=track.value, dataset=dataset.name, split=str(getattr(dataset, "split", "")),
        resolution=str(getattr(dataset, "resolution", "")), device=str(method.device), n_sequences=len(sequences),
        n_frames=n_frames, n_objects=n_objects, seconds=seconds,
        seconds_per_frame=seconds / n_frames if n_frames else float("nan"), masks_dir=str(out), started=started,
        vosbench_version=__version__, options=_jsonable(method.options), jobs=workers,
        input_height=input_height, dataset_identity=dataset_identity(dataset).to_dict(),
        commit=revision["commit"], dirty=revision["dirty"], threads=worker_threads,
        cpu=cpu_model() if str(method.device).startswith("cpu") else "")

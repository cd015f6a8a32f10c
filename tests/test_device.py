"""CPU set-up for torch methods: threads, and the C allocator's reuse of freed memory."""
from __future__ import annotations

import ctypes
import sys

import pytest
import torch

from vosbench.io import allocator
from vosbench.methods import device


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.setattr(device, "_chosen_threads", None)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_configure_threads_sets_torch_threads(restore_threads):
    assert device.configure_threads(1) == 1
    assert torch.get_num_threads() == 1


def test_a_thread_count_asked_for_is_kept_by_later_calls_without_one(restore_threads, monkeypatch):
    """`vosbench run --threads 1` sets 1 thread before it builds the method; a baseline that then
    sets itself up without a count must keep it, not go back to one thread per core."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device.os, "cpu_count", lambda: 4)
    assert device.configure_threads() == 4          # nothing asked for: one per core
    assert device.configure_threads(1) == 1
    assert device.configure_threads() == 1
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert device.configure_threads() == 1          # the count asked for beats the environment


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_large_blocks_stay_in_the_heap():
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc older than 2.33 (no mallinfo2)")
    assert allocator.keep_freed_memory_in_heap() is True
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = _MallInfo2
    size = 256 << 20          # far above glibc's default mmap threshold (at most 32 MB)
    block = libc.malloc(size)
    assert block
    ctypes.memset(block, 1, size)
    assert libc.mallinfo2().hblkhd < size      # served from the heap, not mapped on its own
    libc.free(block)
    assert libc.mallinfo2().fordblks >= size   # and kept there once freed, for the next tensor


def test_allocator_tuning_is_a_no_op_without_glibc(monkeypatch):
    def no_libc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(allocator, "_allocator_tuned", None)
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert allocator.keep_freed_memory_in_heap() is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize("asked", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_a_clear_error(asked):
    from vosbench.errors import VosbenchError

    with pytest.raises(VosbenchError, match=f"--device {asked}.*no CUDA.*Fix: pass --device cpu"):
        device.resolve_device(asked)


@pytest.mark.parametrize("cuda_build", [None, "13.0"])
def test_cuda_without_a_gpu_says_which_torch_build_and_which_fix(monkeypatch, cuda_build):
    # PyPI's Linux wheel is a CUDA build: on a machine without a GPU the fix is not another build.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda_build)
    with pytest.raises(device.DeviceError) as raised:
        device.resolve_device("cuda")
    message = str(raised.value)
    if cuda_build:
        assert "a CUDA 13.0 build" in message and "driver" in message and "install a CUDA build" not in message
    else:
        assert "a CPU-only build" in message and "install a CUDA build" in message


def test_an_unknown_device_is_refused():
    with pytest.raises(device.DeviceError, match="Fix: pass auto, cpu, cuda"):
        device.prepare_torch("gpu")


def test_prepare_torch_resolves_and_sets_threads(restore_threads):
    assert device.prepare_torch("cpu", 1) == "cpu"
    assert torch.get_num_threads() == 1
    assert device.prepare_torch("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_run_with_device_cuda_without_a_gpu_exits_with_the_error_and_writes_nothing(tmp_path, caplog):
    from vosbench.cli import main

    out = tmp_path / "run"
    code = main(["run", "--method", "stm-official", "--device", "cuda", "--out", str(out),
                 "--leaderboard-dir", str(tmp_path / "boards")])
    assert code != 0
    assert "--device cuda" in caplog.text and "Fix:" in caplog.text and "Traceback" not in caplog.text
    assert not out.exists() and not (tmp_path / "boards").exists()


def test_baselines_hold_their_device_in_one_public_attribute():
    """Every torch baseline resolves its device through prepare_torch; none reads another's private one."""
    import pathlib
    import re

    import vosbench_baselines

    root = pathlib.Path(vosbench_baselines.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\bresolve_device\(|\bconfigure_threads\(", text), path.name
        assert "._device" not in text and "._torch_device" not in text, path.name

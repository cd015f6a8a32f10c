"""CPU set-up for torch methods: threads, and the C allocator's reuse of freed memory."""
from __future__ import annotations

import ctypes
import sys

import pytest
import torch

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
    assert device.keep_freed_memory_in_heap() is True
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

    monkeypatch.setattr(device, "_allocator_tuned", None)
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert device.keep_freed_memory_in_heap() is False

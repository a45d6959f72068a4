"""glibc malloc settings for a process that moves megabyte records (images, point clouds), set before they flow.

glibc serves a block above its mmap threshold (128 KiB at start) with its own mapping, given back to the system when
freed; but the first such block freed raises the threshold to its size (up to 32 MiB), so from then on every 1-2 MB
image buffer comes from the heap arena of whichever thread asked (DDS receive, the reader thread, the budget's pacer,
the MQTT writer), and blocks freed by other threads between live ones fragment those arenas: the process's RSS
creeps up for as long as it runs. A fixed threshold ends the rise (glibc then never moves it, nor its trim
threshold): large buffers stay mappings, returned whole when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from dataclasses import dataclass

__all__ = ["LARGE_BLOCK_BYTES", "AllocatorSettings", "fix_mmap_threshold"]

log = logging.getLogger(__name__)

LARGE_BLOCK_BYTES = 256 * 1024  # blocks from this size up get a mapping each (a 256 KiB chunk, an image)
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, glibc's malloc.h
# Set by the user (glibc reads them at start): their choice stands.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_")


@dataclass(frozen=True)
class AllocatorSettings:
    """What `fix_mmap_threshold` did: the threshold set (bytes), or None and why not."""

    mmap_threshold: int | None
    reason: str


def fix_mmap_threshold(threshold: int = LARGE_BLOCK_BYTES, *, environ: dict[str, str] | None = None,
                       libc_name: str | None = None) -> AllocatorSettings:
    """Fix glibc's mmap threshold at `threshold` bytes for this process (no-op off glibc, or when the user set glibc's
    own malloc tunables in the environment); call it before large records flow."""
    env = os.environ if environ is None else environ
    named = [name for name in _USER_SETTINGS if name in env]
    if named or "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        return AllocatorSettings(None, f"left as the environment sets it ({', '.join(named) or 'GLIBC_TUNABLES'})")
    try:
        libc = ctypes.CDLL(libc_name or ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return AllocatorSettings(None, "not glibc (no mallopt)")
    if libc_name is None and not hasattr(libc, "gnu_get_libc_version"):
        return AllocatorSettings(None, "not glibc (musl or another libc)")
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, threshold) != 1:
        return AllocatorSettings(None, f"mallopt(M_MMAP_THRESHOLD, {threshold}) refused")
    return AllocatorSettings(threshold, "fixed: large buffers are mappings, given back whole when freed")

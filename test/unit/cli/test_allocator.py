"""The robot bridge's allocator setting (swarm_bridge/allocator.py): with the mmap threshold fixed, a 1 MiB buffer is a
mapping of its own even after a larger one was freed (glibc's dynamic threshold would have moved it into the heap);
the user's own glibc malloc tunables are left alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from swarm_bridge.allocator import LARGE_BLOCK_BYTES, fix_mmap_threshold

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# In a fresh interpreter: (fix the threshold or not), free a 4 MiB block, then ask for 1 MiB and see whether it came
# as a mapping (mallinfo2's hblkhd: bytes in mapped blocks).
PROBE = textwrap.dedent("""
    import ctypes, json, sys
    from swarm_bridge.allocator import fix_mmap_threshold
    fixed = fix_mmap_threshold().mmap_threshold if sys.argv[1] == "fix" else None
    libc = ctypes.CDLL("libc.so.6")
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(4 << 20))  # glibc's first large free: its threshold would rise to 4 MiB here
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(1 << 20)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    print(json.dumps({"fixed": fixed, "mapped": mapped}))
""")


def _probe(mode: str) -> dict[str, int | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    result: dict[str, int | None] = json.loads(done.stdout)
    return result


@glibc
def test_with_the_threshold_fixed_a_megabyte_buffer_is_a_mapping_after_a_larger_one_was_freed() -> None:
    assert _probe("fix") == {"fixed": LARGE_BLOCK_BYTES, "mapped": pytest.approx(1 << 20, abs=8192)}


@glibc
def test_without_it_glibc_raised_its_threshold_and_the_buffer_came_from_the_heap() -> None:
    """Why the setting exists: what the bridge's 1-2 MB image buffers did before (and fragmented the arenas)."""
    assert _probe("leave") == {"fixed": None, "mapped": 0}


@pytest.mark.parametrize("environ", [{"MALLOC_MMAP_THRESHOLD_": "131072"}, {"MALLOC_TRIM_THRESHOLD_": "0"},
                                     {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}])
def test_the_users_own_malloc_tunables_stand(environ: dict[str, str]) -> None:
    settings = fix_mmap_threshold(environ=environ, libc_name="no-such-libc.so")
    assert settings.mmap_threshold is None
    assert "environment" in settings.reason


def test_without_glibc_it_does_nothing_and_says_so() -> None:
    settings = fix_mmap_threshold(environ={}, libc_name="no-such-libc.so")
    assert settings.mmap_threshold is None
    assert "not glibc" in settings.reason

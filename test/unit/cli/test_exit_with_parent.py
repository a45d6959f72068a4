"""The launch files' request to stop with the launch: honoured once, and not handed on to the process's children."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swarm_bridge.signals import EXIT_WITH_PARENT

PROBE = """
import ctypes, os, signal
from swarm_bridge.signals import EXIT_WITH_PARENT, exit_with_parent_if_asked
asked = exit_with_parent_if_asked()
sig = ctypes.c_int(0)
ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
print(asked, sig.value == signal.SIGTERM, EXIT_WITH_PARENT in os.environ)
"""


@pytest.mark.parametrize(("value", "expected"), [("1", "True True False"), ("", "False False False"),
                                                 ("yes", "False False False")])
def test_the_request_is_honoured_only_when_set_to_1_and_never_inherited(value: str, expected: str) -> None:
    env = {EXIT_WITH_PARENT: value} if value else {}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.split() == expected.split(), out.stderr

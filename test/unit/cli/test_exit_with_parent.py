"""Stopping with the launch (honoured once, never inherited) and cleaning up on SIGTERM as on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

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


def test_sigterm_inside_terminate_as_interrupt_runs_the_cleanup(tmp_path: Path) -> None:
    """A benchmark killed with SIGTERM cleans up as after Ctrl-C (its `finally` blocks run)."""
    marker = tmp_path / "cleaned"
    code = ("import sys, threading\nfrom swarm_bridge.signals import terminate_as_interrupt\n"
            "try:\n    with terminate_as_interrupt():\n        print('ready', flush=True)\n"
            "        threading.Event().wait(60)\n"
            f"except KeyboardInterrupt:\n    open({str(marker)!r}, 'w').write('yes')\n    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert marker.read_text() == "yes"

"""Message definitions for replay: ROS 2 Kilted's standard set plus .msg files from msg dirs and installed packages.

A bag's own definitions always win (rosbags reads them); these fill in for bags that carry none
(Humble-era .db3) and are the ROS 2 side that ROS 1 messages are converted to. Extra definitions only
add types: a standard type is never replaced.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from swarm_bridge.codec.rostypes import installed_msg_files, msg_dir_files
from swarm_bridge.replay.errors import ReplayError

__all__ = ["ReplayTypes"]


class ReplayTypes:
    """Kilted's store, plus the types it lacks from `msg_dirs` (later dirs win) and, when `installed`, from the
    interface packages installed in the ament prefixes (e.g. those built from msg_extra/)."""

    def __init__(self, *, msg_dirs: Iterable[str | os.PathLike[str]] = (), installed: bool = True) -> None:
        files: dict[str, Path] = dict(installed_msg_files()) if installed else {}
        for directory in msg_dirs:
            path = Path(directory)
            if not path.is_dir():
                raise ReplayError(f"--msg-dir {path}", "is not a directory",
                                  "pass a folder holding <pkg>/msg/<Name>.msg files (or a package folder with msg/)")
            found = msg_dir_files(path)
            if not found:
                raise ReplayError(f"--msg-dir {path}", "holds no .msg files",
                                  "lay the definitions out as <dir>/<pkg>/msg/<Name>.msg")
            files.update(found)
        standard = get_typestore(Stores.ROS2_KILTED).fielddefs
        self._extra: dict[str, object] = {}
        for name, path in sorted(files.items()):
            if name in standard:
                continue
            try:
                typs = get_types_from_msg(path.read_text(), name)
            except (OSError, TypesysError, ValueError) as exc:
                raise ReplayError(str(path), f"not a readable .msg definition of {name} ({' '.join(str(exc).split())})",
                                  "correct the file or remove it from the msg dir") from None
            self._extra.update({k: v for k, v in typs.items() if k not in standard})

    @property
    def extra_types(self) -> list[str]:
        """The types added to Kilted's standard set, sorted."""
        return sorted(self._extra)

    def typestore(self) -> Typestore:
        """A fresh typestore (callers may register more types in it without affecting others)."""
        store = get_typestore(Stores.ROS2_KILTED)
        if self._extra:
            store.register(self._extra)  # type: ignore[arg-type]
        return store

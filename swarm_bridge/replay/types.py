"""Message definitions for replay: the installed ones (what rclpy and the bridge read), and those of a bag's own.

The target, `typestore()`: ROS 2 Kilted's standard set, where an installed interface package defines a type
otherwise its installed definition, plus the types it lacks from msg dirs and installed packages (extra
definitions only add types: a standard type is never replaced by a msg dir). The source of a bag that
carries no definitions, `source_typestore(distro)`: that distribution's standard set plus the same extras.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from rosbags.typesys import Stores, TypesysError, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from swarm_bridge.codec.rosdefs import installed_msg_files, msg_dir_files
from swarm_bridge.replay.distro import AUTO, DISTROS
from swarm_bridge.replay.errors import ReplayError

__all__ = ["ReplayTypes"]


class ReplayTypes:
    """Kilted's store, plus the types it lacks from `msg_dirs` (later dirs win) and, when `installed`, from the
    interface packages installed in the ament prefixes (e.g. those built from msg_extra/), whose definitions
    of standard types also win. `bag_distro`: the distribution of bags without definitions (distro.py)."""

    def __init__(self, *, msg_dirs: Iterable[str | os.PathLike[str]] = (), installed: bool = True,
                 bag_distro: str = AUTO) -> None:
        if bag_distro != AUTO and bag_distro not in DISTROS:
            raise ReplayError(f"--bag-distro {bag_distro}", "is not a ROS 2 distribution known here",
                              f"use one of: {', '.join([AUTO, *DISTROS])}")
        self.bag_distro = bag_distro
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
        self._installed = _installed_standard() if installed else {}

    @property
    def extra_types(self) -> list[str]:
        """The types added to Kilted's standard set, sorted."""
        return sorted(self._extra)

    def typestore(self) -> Typestore:
        """A fresh typestore of the installed definitions (callers may register more types in it)."""
        if not self._installed:
            return self._with_extra(get_typestore(Stores.ROS2_KILTED))
        store = get_typestore(Stores.EMPTY)
        store.register({**get_typestore(Stores.ROS2_KILTED).fielddefs, **self._installed})  # type: ignore[dict-item]
        return self._with_extra(store)

    def source_typestore(self, distro: str) -> Typestore:
        """A fresh typestore of the definitions `distro` (e.g. 'humble') had, plus the extra types."""
        return self._with_extra(get_typestore(DISTROS[distro]))

    def _with_extra(self, store: Typestore) -> Typestore:
        extra = {k: v for k, v in self._extra.items() if k not in store.fielddefs}
        if extra:
            store.register(extra)  # type: ignore[arg-type]
        return store


@cache
def _installed_standard() -> dict[str, object]:
    """The standard types whose installed .msg definition has another wire layout than rosbags' Kilted one
    (a ROS 2 other than Kilted on the machine); empty messages and wstring fields are left to the store."""
    standard = get_typestore(Stores.ROS2_KILTED).fielddefs
    differ: dict[str, object] = {}
    for name, path in installed_msg_files().items():
        if name not in standard:
            continue
        try:
            text = path.read_text()
            if "wstring" in text:
                continue
            parsed = get_types_from_msg(text, name)[name]
        except (OSError, TypesysError, ValueError):
            continue
        if parsed[1] and list(parsed[1]) != list(standard[name][1]):
            differ[name] = parsed
    return differ

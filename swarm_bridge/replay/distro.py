"""Which ROS 2 distribution wrote a bag, for bags that carry no message definitions (Humble-era .db3).

Their messages are in the layout of that distribution's interfaces, which may differ from the installed
ones (`sensor_msgs/msg/Range` gained `variance` after Humble). Asked in this order, first answer wins:
`--bag-distro NAME` when given; `ros_distro` in metadata.yaml (rosbag2 format 8 and later) or in the .mcap;
`ros_distro` in the .db3's `schema` table (written since Humble); the rosbag2 format version of older bags
(4: Foxy, 5: Humble, 6 and 7: Iron, 8: Jazzy, 9: Kilted); else Humble, the oldest distribution still in use.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from rosbags.typesys import Stores

__all__ = ["AUTO", "DEFAULT_DISTRO", "DISTROS", "BagDistro", "bag_distro"]

AUTO = "auto"
DEFAULT_DISTRO = "humble"

# distribution -> rosbags' typestore of its standard interfaces
DISTROS: dict[str, Stores] = {
    "foxy": Stores.ROS2_FOXY, "galactic": Stores.ROS2_GALACTIC, "humble": Stores.ROS2_HUMBLE,
    "iron": Stores.ROS2_IRON, "jazzy": Stores.ROS2_JAZZY, "kilted": Stores.ROS2_KILTED,
}

# rosbag2 metadata version -> the distribution that wrote it, for versions older than the `ros_distro` key
_BY_VERSION = {4: "foxy", 5: "humble", 6: "iron", 7: "iron", 8: "jazzy", 9: "kilted"}


@dataclass(frozen=True, slots=True)
class BagDistro:
    """The distribution a bag's undefined messages are read with, and `source`: how that was decided."""

    name: str
    source: str

    def __str__(self) -> str:
        return f"{self.name} ({self.source})"


def bag_distro(path: Path, recorded: Iterable[str | None], *, override: str = AUTO) -> BagDistro:
    """The distribution of the bag at `path`; `recorded` are the `ros_distro` values its readers report."""
    if override != AUTO:
        return BagDistro(override, "--bag-distro")
    for name in recorded:
        if name in DISTROS:
            return BagDistro(name, "ros_distro in the bag's metadata")
    for db3 in ([path] if path.is_file() else sorted(path.glob("*.db3"))) if path.suffix != ".mcap" else []:
        name = _db3_distro(db3)
        if name in DISTROS:
            return BagDistro(name, f"ros_distro in {db3.name}")
    version = _metadata_version(path)
    if version in _BY_VERSION:
        return BagDistro(_BY_VERSION[version], f"rosbag2 format version {version}")
    return BagDistro(DEFAULT_DISTRO, "the bag names none; default, see --bag-distro")


def _db3_distro(db3: Path) -> str | None:
    """`ros_distro` of a rosbag2 sqlite3 file's `schema` table, None when it has none."""
    with contextlib.suppress(sqlite3.Error), contextlib.closing(
            sqlite3.connect(f"file:{db3}?immutable=1", uri=True)) as db:
        row = db.execute("SELECT ros_distro FROM schema").fetchone()
        return str(row[0]) if row else None
    return None


def _metadata_version(path: Path) -> int | None:
    """The `version` of a rosbag2 folder's metadata.yaml, None when there is none."""
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return int(info["version"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None

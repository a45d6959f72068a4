"""pip packaging: data files put the ament index marker, the node shims and
launch/config/schemas where `ros2 run` and `ros2 launch` look for them."""

from pathlib import Path

from setuptools import setup

PACKAGE = "swarm_bridge"
ROOT = Path(__file__).parent


def _files(folder: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).glob("*") if p.is_file())


setup(
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch")),
        (f"share/{PACKAGE}/config", _files("config")),
        (f"share/{PACKAGE}/schemas", _files("schemas")),
        (f"lib/{PACKAGE}", _files("nodes")),
    ],
)

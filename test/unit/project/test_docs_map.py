"""The docs point at real files: every repository path in docs/architecture.md (its map "to change X, open Y"
included) and in the README exists, every relative link of the README and docs/ resolves, and the tables the
architecture doc's walkthroughs name are where it says."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"

# Backticked words with a slash that are not repository paths: a URL path, a broker topic filter, a placeholder.
_NOT_A_PATH = re.compile(r"^[/.]|[:#<>{}$\s]")
# Files the walkthroughs ask a reader to write (the example format and uplink kind), so they do not exist.
WALKTHROUGH_NEW = frozenset({"swarm_bridge/codec/cbor.py", "swarm_bridge/codec/formats/cbor.py",
                             "swarm_bridge/transport/amqp.py"})


def paths_in(text: str) -> list[str]:
    """Every backticked repository path in `text`: words with a slash, placeholders and topics left out."""
    words = re.findall(r"`([^`\n]+)`", text)
    return sorted({w for w in words if "/" in w and not _NOT_A_PATH.search(w)})


def exists(path: str) -> bool:
    """Whether `path` names a file or folder (a glob: at least one) from the repository root or, for the package's
    own `codec/wire.py` style, from `swarm_bridge/`."""
    for base in (ROOT, ROOT / "swarm_bridge"):
        if "*" in path and any(base.glob(path)):
            return True
        if (base / path).exists():
            return True
    return False


def missing(text: str) -> list[str]:
    return [p for p in paths_in(text) if p not in WALKTHROUGH_NEW and not exists(p)]


def map_section(text: str) -> str:
    """The map table of docs/architecture.md."""
    found = re.search(r"^## Map: to change X, open Y\n(.*?)(?=^## )", text, flags=re.MULTILINE | re.DOTALL)
    assert found, "docs/architecture.md has no section '## Map: to change X, open Y'"
    return found.group(1)


def test_paths_in_text_are_found_and_topics_left_out() -> None:
    text = "open `swarm_bridge/gateway/` and `codec/wire.py`; not `swarm/+/amr/#`, `127.0.0.1:9100/metrics`, `/odom`"
    assert paths_in(text) == ["codec/wire.py", "swarm_bridge/gateway/"]
    assert exists("codec/wire.py") and exists("bench/*.py") and not exists("swarm_bridge/nowhere.py")


def test_every_path_in_the_architecture_map_exists() -> None:
    table = map_section(ARCHITECTURE.read_text(encoding="utf-8"))
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| to change")]
    assert len(rows) >= 12, "the map lost rows"
    gone = missing(table)
    assert not gone, f"docs/architecture.md's map names paths that do not exist: {gone}"


def test_every_path_elsewhere_in_the_architecture_doc_exists() -> None:
    gone = missing(ARCHITECTURE.read_text(encoding="utf-8"))
    assert not gone, f"docs/architecture.md names paths that do not exist: {gone}"


def test_every_path_the_readme_names_exists() -> None:
    gone = missing(README.read_text(encoding="utf-8"))
    assert not gone, f"README.md names paths that do not exist: {gone}"


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives the headings of `doc`: lower case, punctuation dropped, spaces as '-'."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    """Each relative link names a file that exists and, after '#', a heading of it."""
    targets = re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8"))
    broken = []
    for target in (t for t in targets if not re.match(r"^[a-z]+:", t)):
        path, _, anchor = target.partition("#")
        linked = doc if not path else doc.parent / path
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to nothing: {broken}"


# What each walkthrough names, as (module, name): the tables and the places a new format or uplink kind is added.
WALKTHROUGH_NAMES = [
    ("swarm_bridge.codec.formats", "FORMATS"),
    ("swarm_bridge.codec.formats.base", "WireFormat"),
    ("swarm_bridge.codec.formats.base", "WireShape"),
    ("swarm_bridge.codec.formats.base", "Framing"),
    ("swarm_bridge.codec.formats.base", "Encoding"),
    ("swarm_bridge.codec.framing", "frame_batch"),
    ("swarm_bridge.codec.records", "RecordCodec"),
    ("swarm_bridge.codec.records", "RecordFormat"),
    ("swarm_bridge.codec.recognise", "SHAPES"),
    ("swarm_bridge.codec.recognise", "expected_shape"),
    ("swarm_bridge.codec.wire", "wire_encoder"),
    ("swarm_bridge.codec.wire", "wire_decoder"),
    ("swarm_bridge.config.common", "RecordFormatName"),
    ("swarm_bridge.config.common", "ROUTE_FORMATS"),
    ("swarm_bridge.gateway.heads", "json_head"),
    ("swarm_bridge.gateway.kafka_to_mqtt", "COMMANDS_DOWN"),
    ("swarm_bridge.config.uplinks", "UplinkBase"),
    ("swarm_bridge.config.uplinks", "UplinkConfig"),
    ("swarm_bridge.config.uplinks", "UPLINK_KINDS"),
    ("swarm_bridge.transport.link", "Uplink"),
    ("swarm_bridge.transport.uplinks", "UPLINKS"),
    ("swarm_bridge.transport.uplinks", "UplinkKind"),
    ("swarm_bridge.transport.uplinks", "build_uplink"),
    ("swarm_bridge.transport.uplinks", "open_uplink"),
    ("swarm_bridge.routing.route", "DESTINATIONS"),
]


def test_the_walkthroughs_name_what_the_code_has() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    for heading in ("## Walkthrough: adding a wire format", "## Walkthrough: adding an uplink kind"):
        assert heading in text
    for module, name in WALKTHROUGH_NAMES:
        assert f"`{name}" in text or f" {name}" in text, f"the walkthroughs no longer mention {name}"
        assert hasattr(importlib.import_module(module), name), f"{module} has no {name} (docs/architecture.md)"
    from swarm_bridge.gateway.translate import Translator

    assert "_readers" in Translator.__init__.__code__.co_names
    from swarm_bridge.config.uplinks import UplinkBase

    assert {"LABEL", "LOGIN_KEYS", "LOGIN_REFUSAL", "COMMANDS_BATCHED", "batch_limit"} <= set(dir(UplinkBase))

"""The fleet page in a real browser: Debian's headless Chromium driven by selenium through /usr/bin/chromedriver
(provision/setup installs both; nothing is downloaded), what the page shows read back, and screenshots kept as
test artefacts."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = os.environ.get("SWARM_BRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SWARM_BRIDGE_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTEFACTS_ENV = "SWARM_BRIDGE_ARTEFACTS"  # a folder to keep the screenshots in (default: the test's tmp_path)
README_SHOT_ENV = "SWARM_BRIDGE_UPDATE_SCREENSHOT"  # 1: also write the README's copy, docs/images/fleet_page.png
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "fleet_page.png"

T = TypeVar("T")


def chromium(profile: Path, *, width: int = 1500, height: int = 1100, extra: tuple[str, ...] = ()) -> webdriver.Chrome:
    """A headless Chromium of its own profile; AssertionError naming the fix when the browser is not installed."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), f"{path} not found: run provision/setup (it installs chromium and chromium-driver)"
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", f"--window-size={width},{height}",
                f"--user-data-dir={profile}", *extra):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str, *, every_s: float = 0.2) -> T:
    """Poll `check` until it returns something truthy (returned); AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            value = check()
        except Exception as exc:  # the page may be between two renders
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last error: {last})")
        time.sleep(every_s)


_TABLE = """
const table = document.querySelector(arguments[0]);
const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent.trim());
return [...table.tBodies[0].rows].map((r) => [r.dataset[arguments[1]] || "",
  Object.fromEntries([...r.cells].map((c, i) => [heads[i], c.textContent.trim()]))]);
"""


def text(driver: webdriver.Chrome, css: str) -> str:
    """The text of one element, read in one script call (the page redraws between two driver calls)."""
    return str(driver.execute_script("return document.querySelector(arguments[0]).textContent.trim();", css))


def table_shown(driver: webdriver.Chrome, css: str, key: str) -> dict[str, dict[str, str]]:
    """A table of the page as one snapshot: row key (its data-`key`) -> column -> text."""
    return {str(k): dict(row) for k, row in driver.execute_script(_TABLE, css, key)}


def robots_shown(driver: webdriver.Chrome) -> dict[str, dict[str, str]]:
    """The robots table: robot id -> column -> text."""
    return table_shown(driver, "#robots", "robot")


def gateways_shown(driver: webdriver.Chrome) -> dict[str, dict[str, str]]:
    """The gateways table: gateway id -> column -> text."""
    return table_shown(driver, "#gateways", "gateway")


def task_shown(driver: webdriver.Chrome, task_id: str) -> dict[str, str] | None:
    """One row of the tasks table (column -> text), None while it is not there."""
    return table_shown(driver, "#tasks", "task").get(task_id)


def task_counts_shown(driver: webdriver.Chrome) -> dict[str, int]:
    """Tasks per state, as the header shows them."""
    found = driver.execute_script("return [...document.querySelectorAll('#task-counts [data-state]')]"
                                  ".map((e) => [e.dataset.state, Number(e.dataset.count)]);")
    return {str(state): int(count) for state, count in found}


def broker_shown(driver: webdriver.Chrome) -> dict[str, str]:
    """The broker's health facts the page lists: fact -> value."""
    found = driver.execute_script("return [...document.querySelectorAll('#broker [data-fact]')]"
                                  ".map((e) => [e.dataset.fact, e.textContent.split(': ').slice(1).join(': ')]);")
    return {str(fact): str(value) for fact, value in found}


def updates(driver: webdriver.Chrome) -> int:
    """How many snapshots the page has drawn."""
    return int(driver.execute_script("return Number(document.getElementById('updated').dataset.version);"))


def map_points(driver: webdriver.Chrome) -> int:
    """Robots drawn on the map (plotly's scatter points)."""
    return int(driver.execute_script("return document.querySelectorAll('#map .scatterlayer .point').length;"))


def screenshot(driver: webdriver.Chrome, tmp_path: Path, name: str, *, readme: bool = False) -> Path:
    """Save the page as PNG in $SWARM_BRIDGE_ARTEFACTS (else `tmp_path`); with `readme` and
    $SWARM_BRIDGE_UPDATE_SCREENSHOT=1, also as the README's copy."""
    folder = Path(os.environ.get(ARTEFACTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path)), f"chromium wrote no screenshot to {path}"
    assert path.stat().st_size > 10_000, f"{path}: {path.stat().st_size} bytes, not a page"
    print(f"screenshot: {path}")
    if readme and os.environ.get(README_SHOT_ENV) == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOT)
        print(f"screenshot for the README: {README_SHOT}")
    return path

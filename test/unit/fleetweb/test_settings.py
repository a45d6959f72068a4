"""The page's settings without a server: loopback or exposed, a token made up when exposed without one, and the
options that cannot work named with their fix."""

from __future__ import annotations

import pytest

from swarm_bridge.fleetweb import FleetWebSettingError, WebSettings
from swarm_bridge.fleetweb.server import exposed


@pytest.mark.parametrize(("host", "out"), [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                           ("127.0.0.2", False), ("0.0.0.0", True), ("192.0.2.7", True),
                                           ("::", True), ("hub.example", True)])
def test_exposed_is_anything_beyond_loopback(host: str, out: bool) -> None:
    assert exposed(host) is out


def test_a_token_is_made_up_only_when_the_page_is_exposed() -> None:
    assert WebSettings().checked().token is None
    made = WebSettings(host="0.0.0.0").checked().token
    assert made is not None and len(made) >= 16
    assert WebSettings(host="0.0.0.0", token="x" * 16).checked().token == "x" * 16


@pytest.mark.parametrize(("settings", "says"), [
    (WebSettings(token="short"), "--token must have at least 16"),
    (WebSettings(tls_cert="cert.pem"), "--tls-cert and --tls-key together"),
    (WebSettings(port=70000), "port must be 0..65535"),
    (WebSettings(period_s=0), "period_s must be > 0"),
])
def test_options_that_cannot_work_are_named(settings: WebSettings, says: str) -> None:
    with pytest.raises(FleetWebSettingError, match=says):
        settings.checked()

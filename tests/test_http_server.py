"""The settings both HTTP services share (sensorpipe.http_server) and their config keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorpipe.api.config import ServeConfig
from sensorpipe.gateway.kits.config import AirrohrSettings, HttpSettings
from sensorpipe.http_server import client_key
from sensorpipe.protocol.configfile import ConfigError, load_model


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same subscriber's network
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
    ],
)
def test_a_client_is_counted_by_its_address_or_its_ipv6_64(host: str, key: str) -> None:
    assert client_key(host) == key


def test_defaults_of_both_services() -> None:
    serve, http, airrohr = ServeConfig(), HttpSettings(), AirrohrSettings()
    assert (serve.request_timeout_s, serve.max_connections_per_client) == (10.0, 64)
    assert (http.request_timeout_s, http.max_connections_per_client) == (10.0, 64)
    assert (airrohr.client_checks_burst, airrohr.client_check_refill_s) == (10, 2.0)


def test_the_former_header_timeout_key_is_a_clear_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text("port = 8080\nheader_timeout_s = 4\n")
    with pytest.raises(ConfigError) as caught:
        load_model(path, ServeConfig)
    assert str(caught.value) == (
        f"{path}: header_timeout_s (line 2): renamed request_timeout_s: it now bounds the whole "
        f"request (line, headers and body); write request_timeout_s = 4.0 instead"
    )

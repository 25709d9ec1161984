"""nginx's per-address limits: read from the environment, rendered into its config."""

from __future__ import annotations

from pathlib import Path

import pytest

from native.stack import DEFAULTS, NginxLimits, write_nginx_config


def test_defaults_are_native_modes_and_read_from_the_environment() -> None:
    assert NginxLimits.from_env(DEFAULTS) == NginxLimits()
    limits = NginxLimits.from_env({"SIGN_INS_PER_MINUTE": "3", "REQUEST_BURST": ""})
    assert (limits.SIGN_INS_PER_MINUTE, limits.REQUEST_BURST) == (3, NginxLimits().REQUEST_BURST)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_limit_must_be_positive(value: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        NginxLimits.from_env({"CONNECTIONS_PER_ADDRESS": value})


def test_every_limit_is_rendered(tmp_path: Path) -> None:
    limits = NginxLimits(
        SIGN_INS_PER_MINUTE=7,
        SIGN_IN_BURST=11,
        REQUESTS_PER_SECOND=13,
        REQUEST_BURST=17,
        CONNECTIONS_PER_ADDRESS=19,
    )
    write_nginx_config(tmp_path, listen_port=8080, chat_ui_upstream="127.0.0.1:1", limits=limits)
    rendered = "\n".join(path.read_text() for path in (tmp_path / "conf.d").iterdir())
    settings = [line for line in rendered.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in settings if "${" in line]
    for expected in (
        "rate=7r/m",
        "zone=chat_app_sign_ins burst=11 nodelay",
        "rate=13r/s",
        "zone=chat_app_requests burst=17 nodelay",
        "limit_conn chat_app_connections 19",
        "error_page 429 /429.html",
    ):
        assert expected in rendered, expected

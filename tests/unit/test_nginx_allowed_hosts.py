"""ALLOWED_HOSTS: read from the environment, checked, and rendered into nginx's map."""

from __future__ import annotations

from pathlib import Path

import pytest

from native.stack import allowed_hosts_from_env, write_nginx_config


def test_unset_or_empty_means_any_host() -> None:
    assert allowed_hosts_from_env({}) == ()
    assert allowed_hosts_from_env({"ALLOWED_HOSTS": " , "}) == ()


def test_names_and_addresses_are_read_trimmed() -> None:
    value = " chat.example.com, 192.168.1.20 ,[::1],localhost"
    assert allowed_hosts_from_env({"ALLOWED_HOSTS": value}) == (
        "chat.example.com",
        "192.168.1.20",
        "[::1]",
        "localhost",
    )


@pytest.mark.parametrize(
    "value",
    [
        "https://chat.example.com",
        "chat.example.com:8443",
        "chat.example.com/",
        'chat"; return 200; "',
        "$host",
        "chat example",
        "::1",
    ],
)
def test_anything_but_a_host_name_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="ALLOWED_HOSTS"):
        allowed_hosts_from_env({"ALLOWED_HOSTS": value})


@pytest.mark.parametrize(
    ("hosts", "expected"), [((), '",,|$host"'), (("a.example", "b"), '",a.example,b,|$host"')]
)
def test_the_list_is_rendered_into_the_map(
    tmp_path: Path, hosts: tuple[str, ...], expected: str
) -> None:
    write_nginx_config(
        tmp_path, listen_port=8080, chat_ui_upstream="127.0.0.1:1", allowed_hosts=hosts
    )
    rendered = (tmp_path / "conf.d" / "00-chat-app.conf").read_text()
    assert f"map {expected} $chat_app_unknown_host" in rendered
    site = (tmp_path / "conf.d" / "chat-app-site.inc").read_text()
    assert "include conf.d/chat-app-host-check.inc;" in site

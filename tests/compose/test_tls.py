"""HTTPS in compose: mounting a certificate and key is all it takes."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.forms import post_sign_up
from tests.compose.conftest import ComposeStack
from tests.support.tls import make_self_signed_certificate


@pytest.fixture(scope="module")
def https_stack(
    compose_stack: ComposeStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ComposeStack, Path]]:
    certificate = make_self_signed_certificate(tmp_path_factory.mktemp("tls"))
    plain_env = compose_stack.env_file.read_text()
    compose_stack.env_file.write_text(f"{plain_env}TLS_CERT_DIR={certificate.parent}\n")
    try:
        # The mount changed, so compose recreates nginx, which now finds the files.
        compose_stack.timed("up with a certificate (nginx recreated)", "up", "--detach", "--wait")
        yield compose_stack, certificate
    finally:
        compose_stack.env_file.write_text(plain_env)
        compose_stack.compose("up", "--detach", "--wait")


def test_http_redirects_and_https_serves_with_hsts_and_secure_cookies(
    https_stack: tuple[ComposeStack, Path],
) -> None:
    stack, certificate = https_stack
    https_url = f"https://127.0.0.1:{stack.tls_port}"
    redirect = httpx.get(f"{stack.url}/login?next=/chats")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"{https_url}/login?next=/chats"

    trust = ssl.create_default_context(cafile=str(certificate))
    with httpx.Client(base_url=https_url, verify=trust) as client:
        form = client.get("/signup")
        assert form.status_code == 200
        assert form.headers["strict-transport-security"].startswith("max-age=")
        assert "unsafe-inline" not in form.headers["content-security-policy"]
        assert form.headers["set-cookie"].startswith("__Host-chat_session=")
        assert "; secure" in form.headers["set-cookie"].lower()
        signed_up = post_sign_up(client, form.text)
        assert signed_up.status_code == 303
        assert signed_up.headers["set-cookie"].startswith("__Host-chat_session=")
        assert "; secure" in signed_up.headers["set-cookie"].lower()
        chats = client.get(signed_up.headers["location"])
        assert chats.status_code == 200
        assert "New chat" in chats.text

"""HTTPS at nginx: a mounted certificate turns it on, plain HTTP then only redirects,
HSTS is sent, the session cookie is Secure and `__Host-` prefixed, and a reply streams
over HTTP/2."""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from harness.chat_ui import ChatUiServer
from harness.factories import unique_username
from harness.forms import csrf_from, post_sign_up
from harness.nginx import start_nginx
from harness.processes import free_port
from tests.e2e.test_browser_journey import start_chat_and_get_reply
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import sign_up
from tests.support.tls import make_self_signed_certificate


@dataclass(frozen=True)
class HttpsSite:
    http_url: str
    https_url: str
    certificate: Path


@pytest.fixture(scope="module")
def https_site(
    chat_ui: ChatUiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpsSite]:
    tls_dir = tmp_path_factory.mktemp("tls")
    certificate = make_self_signed_certificate(tls_dir)
    port, tls_port = free_port(), free_port()
    process = start_nginx(
        config_dir=tmp_path_factory.mktemp("nginx-tls"),
        chat_ui_upstream=chat_ui.url.removeprefix("http://"),
        port=port,
        tls_dir=tls_dir,
        tls_port=tls_port,
    )
    try:
        yield HttpsSite(
            http_url=f"http://127.0.0.1:{port}",
            https_url=f"https://127.0.0.1:{tls_port}",
            certificate=certificate,
        )
    finally:
        process.stop()


def trusting(site: HttpsSite) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(site.certificate))


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_plain_http_redirects_to_the_same_address_over_https(
    https_site: HttpsSite, method: str
) -> None:
    response = httpx.request(method, f"{https_site.http_url}/chats?q=paris", data={"a": "b"})
    # 308 (not 301): a form posted over HTTP is re-sent, body and all, over HTTPS.
    assert response.status_code == 308
    assert response.headers["location"] == f"{https_site.https_url}/chats?q=paris"
    assert "strict-transport-security" not in response.headers


def test_with_allowed_hosts_only_their_names_are_redirected_or_served(
    chat_ui: ChatUiServer, tmp_path: Path
) -> None:
    """Set on a server, ALLOWED_HOSTS also keeps the HTTP redirect to its own names."""
    tls_dir = tmp_path / "tls"
    certificate = make_self_signed_certificate(tls_dir)
    port, tls_port = free_port(), free_port()
    process = start_nginx(
        config_dir=tmp_path / "nginx",
        chat_ui_upstream=chat_ui.url.removeprefix("http://"),
        port=port,
        tls_dir=tls_dir,
        tls_port=tls_port,
        allowed_hosts=("localhost",),
    )
    https = ssl.create_default_context(cafile=str(certificate))
    try:
        redirect = httpx.get(f"http://127.0.0.1:{port}/chats", headers={"Host": "localhost"})
        assert redirect.status_code == 308
        assert redirect.headers["location"] == f"https://localhost:{tls_port}/chats"
        page = httpx.get(
            f"https://127.0.0.1:{tls_port}/login", headers={"Host": "localhost"}, verify=https
        )
        assert page.status_code == 200
        for url in (f"http://127.0.0.1:{port}/chats", f"https://127.0.0.1:{tls_port}/login"):
            refused = httpx.get(url, headers={"Host": "evil.example"}, verify=https)
            assert refused.status_code == 421, url
            assert "location" not in refused.headers
    finally:
        process.stop()


def test_https_pages_carry_hsts_and_the_security_headers(https_site: HttpsSite) -> None:
    response = httpx.get(f"{https_site.https_url}/login", verify=trusting(https_site))
    assert response.status_code == 200
    assert "Sign in" in response.text
    hsts = response.headers["strict-transport-security"]
    assert int(re.fullmatch(r"max-age=(\d+)", hsts)[1]) >= 365 * 24 * 3600  # type: ignore[index]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    static = httpx.get(f"{https_site.https_url}/static/style.css", verify=trusting(https_site))
    assert static.status_code == 200
    assert "strict-transport-security" in static.headers


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_is_modern_and_offers_http2(https_site: HttpsSite) -> None:
    context = ssl.create_default_context(cafile=str(https_site.certificate))
    context.set_alpn_protocols(["h2", "http/1.1"])
    port = int(https_site.https_url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.selected_alpn_protocol() == "h2"
    # A client willing to speak TLS 1.1 only (security level 0 lets OpenSSL offer it):
    # the refusal must come from nginx.
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(https_site.certificate))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old.wrap_socket(raw, server_hostname="localhost")


def test_session_cookie_is_host_prefixed_and_secure_over_https(https_site: HttpsSite) -> None:
    """`__Host-`: browsers keep it only Secure, `Path=/` and without `Domain`."""
    with httpx.Client(base_url=https_site.https_url, verify=trusting(https_site)) as client:
        form = client.get("/signup")
        signed_up = post_sign_up(client, form.text)
        assert signed_up.status_code == 303
        chats = client.get("/chats")
        assert chats.status_code == 200
        signed_out = client.post("/logout", data={"csrf_token": csrf_from(chats.text)})
        assert signed_out.status_code == 303
        assert client.get("/chats").headers["location"].startswith("/login")
    for response in (form, signed_up, signed_out):
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-chat_session=")
        assert "; secure" in cookie.lower() and "; path=/;" in cookie.lower()
        assert "domain=" not in cookie.lower()
    # Signing out replaces the prefixed cookie with one holding only the "You are signed
    # out" notice (the new value obeys the prefix's rules too): the sign-in is gone.
    signed_in_value = signed_up.headers["set-cookie"].split(";")[0]
    assert signed_out.headers["set-cookie"].split(";")[0] != signed_in_value


def test_a_reply_streams_in_the_browser_over_https(
    https_site: HttpsSite, open_tab: OpenTab
) -> None:
    tab = open_tab(ignore_https_errors=True)
    page = tab.page
    sign_up(page, https_site.https_url, unique_username("tls"))
    chat_url = start_chat_and_get_reply(page, https_site.https_url)
    assert chat_url.startswith("https://")
    protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
    assert protocol == "h2"
    expect(page.locator(".message--assistant").first).to_have_attribute("data-status", "complete")
    # Chromium enforces the prefix's rules: it kept the cookie, so they hold.
    cookies = page.context.cookies()
    assert [cookie["name"] for cookie in cookies] == ["__Host-chat_session"]
    assert all(cookie["secure"] and cookie["path"] == "/" for cookie in cookies)
    save_screenshot(page, "chat-over-https")
    assert tab.script_errors == []

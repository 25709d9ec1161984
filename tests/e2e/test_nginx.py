"""nginx as the single entry point: headers, static files, limits, friendly errors."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from harness.chat_ui import ChatUiServer
from harness.db_api import DbApiServer
from harness.factories import unique_username
from harness.forms import csrf_from
from harness.nginx import NginxServer, start_nginx
from harness.processes import free_port
from native.stack import UNLIMITED, NginxLimits


def test_pages_carry_security_headers(nginx: NginxServer) -> None:
    response = httpx.get(f"{nginx.url}/login")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "nginx/" not in response.headers.get("server", "")


def test_static_files_are_served_by_nginx_with_caching(nginx: NginxServer) -> None:
    response = httpx.get(f"{nginx.url}/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "max-age=3600" in response.headers["cache-control"]
    assert "etag" in response.headers
    # Security headers apply to static files too.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{nginx.url}/static/../templates/base.html").status_code in (400, 404)


def test_pages_name_static_files_by_content_and_nginx_keeps_those_a_year(
    nginx: NginxServer,
) -> None:
    page = httpx.get(f"{nginx.url}/login").text
    addresses = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert len(addresses) == 4, addresses
    for address in addresses:
        path, _, version = address.partition("?v=")
        content = httpx.get(f"{nginx.url}{path}").content
        assert version == hashlib.sha256(content).hexdigest()[:12], address
        versioned = httpx.get(f"{nginx.url}{address}")
        assert versioned.status_code == 200 and versioned.content == content
        assert versioned.headers["cache-control"] == f"max-age={365 * 24 * 3600}"
        assert versioned.headers["x-content-type-options"] == "nosniff"


def test_oversized_request_body_is_refused(nginx: NginxServer) -> None:
    response = httpx.post(f"{nginx.url}/login", content=b"x" * (300 * 1024))
    assert response.status_code == 413
    # A page a person can read, not nginx's bare one.
    assert "too much at once" in response.text
    assert "nginx" not in response.text


def test_session_cookie_flags_through_nginx(nginx: NginxServer) -> None:
    response = httpx.get(f"{nginx.url}/login")
    cookie = response.headers.get("set-cookie", "")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()


def test_a_forged_forwarded_proto_does_not_make_plain_http_https(nginx: NginxServer) -> None:
    """chat-ui marks cookies by the scheme nginx reports: nginx's own, not the client's."""
    response = httpx.get(f"{nginx.url}/login", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("chat_session=")
    assert "; secure" not in cookie.lower()
    assert "strict-transport-security" not in response.headers


def test_redirects_through_nginx_name_no_host(nginx: NginxServer) -> None:
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    with httpx.Client(base_url=nginx.url, headers=forged) as client:
        slash = client.get("/chats/?q=paris")
        home = client.get("/")
    assert (slash.status_code, slash.headers["location"]) == (307, "/chats?q=paris")
    assert (home.status_code, home.headers["location"]) == (303, "/login")


def test_friendly_page_when_chat_ui_is_down(tmp_path: Path) -> None:
    port = free_port()
    dead_upstream = f"127.0.0.1:{free_port()}"
    process = start_nginx(config_dir=tmp_path, chat_ui_upstream=dead_upstream, port=port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/chats")
        assert response.status_code == 502
        assert "taking a break" in response.text
        assert "Traceback" not in response.text
    finally:
        process.stop()


def test_a_forged_forwarded_for_header_does_not_change_the_counted_address(
    nginx: NginxServer, db_api: DbApiServer
) -> None:
    """Failed sign-ins count per client address: a client must not pick its own."""
    forged = "203.0.113.77"
    with httpx.Client(base_url=nginx.url) as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": unique_username("forger"),
                "password": "not the password",
                "csrf_token": csrf_from(form.text),
            },
            headers={"X-Forwarded-For": forged},
        )
    assert response.status_code == 401
    engine = create_engine(db_api.database_url)
    try:
        with engine.connect() as connection:
            keys = connection.execute(text("SELECT key FROM login_throttles")).scalars().all()
    finally:
        engine.dispose()
    assert not [key for key in keys if forged in key]
    assert [key for key in keys if "127.0.0.1" in key]


@contextmanager
def limited_nginx(
    tmp_path: Path,
    chat_ui: ChatUiServer,
    limits: NginxLimits = UNLIMITED,
    allowed_hosts: tuple[str, ...] = (),
) -> Iterator[str]:
    """Another nginx in front of the session's chat-ui, with `limits` and `allowed_hosts`;
    answers its URL."""
    port = free_port()
    process = start_nginx(
        config_dir=tmp_path,
        chat_ui_upstream=chat_ui.url.removeprefix("http://"),
        port=port,
        limits=limits,
        allowed_hosts=allowed_hosts,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def test_a_flood_of_sign_ins_from_one_address_gets_429(
    tmp_path: Path, chat_ui: ChatUiServer
) -> None:
    limits = replace(UNLIMITED, SIGN_INS_PER_MINUTE=1, SIGN_IN_BURST=3)
    with limited_nginx(tmp_path, chat_ui, limits) as url, httpx.Client(base_url=url) as client:
        form = {"csrf_token": csrf_from(client.get("/login").text)}
        wrong = {**form, "username": unique_username("flood"), "password": "not-the-password"}
        responses = [client.post("/login", data=wrong) for _ in range(8)]
        # The first and the burst reach chat-ui (a wrong password: the form again, or
        # db-api's own throttle); the rest get nginx's page.
        from_nginx = ["Slow down a little" in response.text for response in responses]
        assert from_nginx == [False] * 4 + [True] * 4, [r.status_code for r in responses]
        assert {response.status_code for response in responses[4:]} == {429}
        assert all("nginx" not in response.text for response in responses[4:])
        # Pages, and sign-in forms shown, are not sign-ins.
        assert client.get("/login").status_code == 200
        assert client.get("/static/style.css").status_code == 200


def test_a_flood_of_requests_from_one_address_gets_429(
    tmp_path: Path, chat_ui: ChatUiServer
) -> None:
    limits = replace(UNLIMITED, REQUESTS_PER_SECOND=1, REQUEST_BURST=5)
    with limited_nginx(tmp_path, chat_ui, limits) as url, httpx.Client(base_url=url) as client:
        statuses = Counter(client.get("/login").status_code for _ in range(20))
        # One per second plus a burst of 5: well under 20 in this short a time.
        assert 5 <= statuses[200] < 15 and statuses[429] == 20 - statuses[200], statuses
        # Static files never count, nor are they refused.
        assert {client.get("/static/style.css").status_code for _ in range(20)} == {200}


def test_without_allowed_hosts_any_host_name_is_served(nginx: NginxServer) -> None:
    """The default: a LAN address, or any name that points here, just works."""
    for host in ("evil.example", "192.168.1.20", "chat.example.com:8080"):
        response = httpx.get(f"{nginx.url}/login", headers={"Host": host})
        assert response.status_code == 200, host
        assert "Sign in" in response.text


def test_with_allowed_hosts_only_those_names_are_served(
    tmp_path: Path, chat_ui: ChatUiServer
) -> None:
    allowed = ("chat.example.com", "192.168.1.20")
    with limited_nginx(tmp_path, chat_ui, allowed_hosts=allowed) as url:
        for host in ("chat.example.com", "CHAT.Example.com:8080", "192.168.1.20"):
            response = httpx.get(f"{url}/login", headers={"Host": host})
            assert response.status_code == 200, host
            assert "Sign in" in response.text
        for host in ("evil.example", "127.0.0.1", "chat.example.com.evil.example", "example.com"):
            for method, path in (
                ("GET", "/login"),
                ("GET", "/static/style.css"),
                ("POST", "/login"),
            ):
                refused = httpx.request(method, f"{url}{path}", headers={"Host": host})
                assert refused.status_code == 421, (host, method, path)
                # nginx's own answer: chat-ui never saw it, so no session cookie.
                assert refused.text == "This server does not answer to that host name.\n"
                assert refused.headers["content-type"] == "text/plain"
                assert "set-cookie" not in refused.headers
                assert refused.headers["x-content-type-options"] == "nosniff"

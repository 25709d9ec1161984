"""Through nginx: every kind of response carries the security headers and a strict CSP."""

from __future__ import annotations

import httpx

from harness.nginx import NginxServer

REQUIRED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
CSP_MUST_HAVE = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


def test_every_kind_of_response_has_the_headers(nginx: NginxServer) -> None:
    with httpx.Client(base_url=nginx.url, follow_redirects=False) as client:
        responses = {
            "page": client.get("/login"),
            "redirect": client.get("/chats"),
            "not found": client.get("/no/such/page"),
            "static": client.get("/static/style.css"),
            "csrf refusal": client.post("/login", data={"username": "a", "password": "b"}),
            "too large": client.post("/login", content=b"x" * (300 * 1024)),
        }
    for kind, response in responses.items():
        for name, value in REQUIRED.items():
            assert response.headers.get(name) == value, (kind, name)
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, kind
        for directive in CSP_MUST_HAVE:
            assert directive in csp, (kind, directive)
        # One policy only: chat-ui's own copy is hidden behind nginx's.
        assert len(response.headers.get_list("content-security-policy")) == 1, kind
    assert responses["too large"].status_code == 413
    assert responses["csrf refusal"].status_code == 403
    assert responses["page"].headers["cache-control"] == "no-store"

"""A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__: list[str] = []


def make_self_signed_certificate(directory: Path) -> Path:
    """Write tls.crt and tls.key (the names nginx looks for) into `directory`.

    The certificate is its own issuer, so clients verify against tls.crt itself.
    """
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(directory / "tls.key"),
            "-out", str(directory / "tls.crt"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    # The key is private: readable by the owner (and root, which nginx starts as) only.
    (directory / "tls.key").chmod(0o600)
    return directory / "tls.crt"

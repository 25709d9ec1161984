"""A real nginx in front of chat-ui, configured exactly like native mode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.processes import ServiceProcess
from native.stack import (
    UNLIMITED,
    NginxLimits,
    nginx_command,
    tls_files_present,
    write_nginx_config,
)


@dataclass(frozen=True)
class NginxServer:
    url: str
    process: ServiceProcess
    config_dir: Path


def start_nginx(
    *,
    config_dir: Path,
    chat_ui_upstream: str,
    port: int,
    tls_dir: Path | None = None,
    tls_port: int | None = None,
    limits: NginxLimits = UNLIMITED,
    allowed_hosts: tuple[str, ...] = (),
) -> ServiceProcess:
    """nginx as native mode runs it; `limits` per client address are off unless given.

    (Every test drives the app from one address, as fast as it can.) With
    `allowed_hosts`, other host names get 421.
    """
    main_config = write_nginx_config(
        config_dir,
        listen_port=port,
        chat_ui_upstream=chat_ui_upstream,
        access_log="off",
        tls_dir=tls_dir,
        tls_port=tls_port,
        limits=limits,
        allowed_hosts=allowed_hosts,
    )
    process = ServiceProcess(f"nginx-{port}", nginx_command(main_config)).start()
    # With TLS on, plain HTTP only redirects; the address itself may not be an allowed host.
    expected = 308 if tls_files_present(tls_dir) and tls_port is not None else 200
    if allowed_hosts and "127.0.0.1" not in allowed_hosts:
        expected = 421
    process.wait_for_http(f"http://127.0.0.1:{port}/static/style.css", expect=expected)
    return process

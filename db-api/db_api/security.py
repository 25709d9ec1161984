"""Password hashing with argon2id, session tokens, and the keys failed logins are counted by."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import threading
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults follow RFC 9106's recommended argon2id profile.
_hasher = PasswordHasher()
# Each hash takes 64 MiB and a core for a moment. A burst of sign-ins (each request
# runs in a worker thread) would otherwise hash dozens at once: no sooner in total,
# and dozens of times the memory. The rest wait their turn.
# With several worker processes (WEB_CONCURRENCY) the cores are shared among them.
_workers = max(1, int(os.environ.get("WEB_CONCURRENCY") or 1))
_hashing_slots = threading.BoundedSemaphore(max(1, (os.cpu_count() or 1) // _workers))

UNKNOWN_CLIENT = "unknown"


def hash_password(password: str) -> str:
    with _hashing_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        with _hashing_slots:
            return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the stored hash uses weaker parameters than today's hasher."""
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not-a-real-password")


def spend_verification_time(password: str) -> None:
    """Do the same work as a real check, so an unknown username answers as slowly."""
    verify_password(_dummy_hash(), password)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def hash_session_token(token: str) -> str:
    # The token carries 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def client_key(client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str:
    """The client an attempt is counted against: its IPv4 address, or its IPv6 /64.

    One IPv6 host usually controls a whole /64, so counting single addresses would let
    it step around the limit.
    """
    if client_ip is None:
        return UNKNOWN_CLIENT
    if isinstance(client_ip, ipaddress.IPv6Address):
        if client_ip.ipv4_mapped is not None:
            return str(client_ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((client_ip, 64), strict=False))
    return str(client_ip)


def login_throttle_keys(*, username: str, client: str) -> tuple[str, str, str]:
    """(the client's key, the account-from-this-client key, the account's key).

    The account-from-client key locks only that pair, so failures from one address never
    lock the account for its owner signing in from elsewhere; the account's own key
    counts failures from every address, for guessing spread over many. Unknown usernames
    are counted the same way as real ones, so the answers reveal nothing about which
    accounts exist.
    """
    name = username.lower()
    return f"ip:{client}", f"account:{name}@{client}", f"account:{name}"

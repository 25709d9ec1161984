"""Benchmarks of the native stack: `make bench` (`python -m bench`) writes docs/benchmarks/."""

from __future__ import annotations

import sys
from pathlib import Path

# As in native mode (PYTHONPATH), the service packages sit in one folder per service;
# the benchmarks read their settings (e.g. lm-api's defaults) to report what they measured.
_REPO_ROOT = Path(__file__).resolve().parents[1]
for _service in ("db-api", "chat-ui", "lm-api"):
    if str(_REPO_ROOT / _service) not in sys.path:
        sys.path.append(str(_REPO_ROOT / _service))

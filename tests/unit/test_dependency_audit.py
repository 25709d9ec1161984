"""No pinned dependency has a known vulnerability.

pip-audit asks PyPI for each pinned release's advisories (its default service). Where
that per-release API is unreachable, PyPI's per-project API still carries the
advisories of each project's newest release, which covers every pin that is the
newest. The test skips only when neither source answers, and says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.processes import REPO_ROOT

REQUIREMENTS = [
    REPO_ROOT / "chat-ui" / "requirements.txt",
    REPO_ROOT / "db-api" / "requirements.txt",
    REPO_ROOT / "lm-api" / "requirements.txt",
    REPO_ROOT / "native" / "requirements.txt",
    REPO_ROOT / "bench" / "requirements.txt",
    REPO_ROOT / "requirements-dev.txt",
]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in REQUIREMENTS:
        for line in path.read_text().splitlines():
            if match := PIN.match(line.strip()):
                found[match[1].lower().replace("_", "-")] = match[2]
    return found


def pip_audit(requirements: list[Path]) -> dict[str, dict[str, object]]:
    """pip-audit's JSON verdict per package (its PyPI service, no resolution needed)."""
    command = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "-f", "json"]
    command += ["--progress-spinner", "off"]
    for path in requirements:
        command += ["-r", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    report = json.loads(result.stdout or "{}")
    return {dep["name"].lower(): dep for dep in report.get("dependencies", [])}


def newest_release_advisories(name: str) -> tuple[str, list[str]] | None:
    """(newest version, its advisory ids) from PyPI's per-project API, or None."""
    try:
        response = httpx.get(f"https://pypi.org/pypi/{name}/json", timeout=30)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body = response.json()
    advisories = [v["id"] for v in body.get("vulnerabilities", []) if not v.get("withdrawn")]
    return body["info"]["version"], advisories


def test_no_pinned_dependency_has_a_known_vulnerability() -> None:
    pinned = pins()
    # requirements-dev.txt includes every other file, so it alone lists every pin.
    audited = pip_audit([REQUIREMENTS[-1]])
    vulnerable = {
        name: [vuln["id"] for vuln in dep.get("vulns", [])]  # type: ignore[attr-defined]
        for name, dep in audited.items()
        if dep.get("vulns")
    }
    checked = {name for name, dep in audited.items() if "skip_reason" not in dep}
    unchecked = sorted(set(pinned) - checked)
    fallback_checked = []
    for name in unchecked:
        newest = newest_release_advisories(name)
        if newest is not None and newest[0] == pinned[name]:
            fallback_checked.append(name)
            if newest[1]:
                vulnerable[name] = newest[1]
    if not checked and not fallback_checked:
        pytest.skip(
            "No vulnerability data reachable: PyPI's per-release JSON API "
            "(pypi.org/pypi/NAME/VERSION/json, pip-audit's default service) and the "
            "per-project JSON API both failed"
        )
    print(
        f"dependency audit: {len(pinned)} pins; {len(checked)} checked by pip-audit, "
        f"{len(fallback_checked)} against their newest release's advisories, "
        f"{len(pinned) - len(checked) - len(fallback_checked)} without data here"
    )
    assert vulnerable == {}, f"known vulnerabilities: {vulnerable}"

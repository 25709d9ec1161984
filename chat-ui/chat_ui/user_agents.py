"""A browser named the way a person recognises it ("Firefox on Linux"), from its User-Agent.

For the account page's list of sign-ins, where a rough name reads better than two
hundred characters of version numbers; anything unrecognised is shown as sent.
"""

from __future__ import annotations

# First match wins: Edge and Opera also say "Chrome/", Chrome also says "Safari/".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
# Android also says "Linux", iPhones and iPads also say "Mac OS X".
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)
UNKNOWN_BROWSER = "Unknown browser"


def describe_browser(user_agent: str | None) -> str:
    """ "Firefox on Linux", "Safari on iOS", or the User-Agent itself when not recognised."""
    if not user_agent:
        return UNKNOWN_BROWSER
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser is None:
        return user_agent
    return f"{browser} on {system}" if system else browser

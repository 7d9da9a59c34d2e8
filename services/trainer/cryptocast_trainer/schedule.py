"""``CRYPTOCAST_TRAINER_SCHEDULE``: how often the trainer runs, in a form people write."""

from __future__ import annotations

import re

NAMED = {"hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0}
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MINIMUM = 60.0  # seconds; a shorter schedule is a typo, not a plan


def parse_schedule(text: str) -> float | None:
    """Seconds between runs, or None for ``off``: ``daily``, ``hourly``, ``weekly``,
    ``every 6h`` / ``6h`` / ``every 30m`` / ``every 2d``, or plain seconds (``21600``)."""
    value = text.strip().lower()
    if value in ("off", "never", "manual"):
        return None
    if value in NAMED:
        return NAMED[value]
    match = re.fullmatch(r"(?:every\s+)?(\d+(?:\.\d+)?)\s*([smhd]?)", value)
    if match is None:
        raise ValueError(
            f"schedule {text!r} is not daily, hourly, weekly, off, 'every <n><s|m|h|d>' "
            "or a number of seconds"
        )
    seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds < MINIMUM:
        raise ValueError(f"schedule {text!r} is shorter than {MINIMUM:g} seconds")
    return seconds

"""Times as files and exchanges write them: ISO 8601, unix seconds or unix milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

# As unix seconds this is the year 5138; as milliseconds, March 1973. Any larger number is
# in milliseconds.
MILLISECONDS_FROM = 1e11


def is_milliseconds(number: float) -> bool:
    return number > MILLISECONDS_FROM


def unix_seconds(number: float) -> float:
    """Unix seconds from a number in unix seconds or milliseconds."""
    return number / 1000 if is_milliseconds(number) else number


def parse_time(text: str) -> float:
    """Unix seconds from ISO 8601 (naive means UTC), unix seconds or unix milliseconds."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return unix_seconds(number)

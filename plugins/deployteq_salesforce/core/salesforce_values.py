"""Salesforce values as they arrive on the wire, read one way everywhere (no Airflow, no database).

REST answers datetimes as ``2024-01-01T00:00:00.000+0000``, Bulk API 2.0 CSV as
``2024-01-01T00:00:00.000Z``; both are aware instants in UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def parse_salesforce_datetime(value: Any, *, naive_is_utc: bool = False) -> datetime:
    """A Salesforce date-time (text or datetime) as an aware UTC datetime.

    Raises ``ValueError`` naming the problem for anything else.  A value without a zone offset is
    refused unless ``naive_is_utc`` (for sources that are not Salesforce, e.g. webhook pushes).
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())  # Python 3.11 reads "+0000" and "Z"
        except ValueError:
            raise ValueError("not a date-time like 2024-01-01T00:00:00.000+0000") from None
    else:
        raise ValueError(f"a date-time must be text, not {type(value).__name__}")
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise ValueError("date-time has no time zone offset")
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)

"""Rules every configuration model shares: Salesforce names, schedules, and where pydantic found a problem.

No Airflow here; the customer objects (``flows/customers/config.py``) and the object links
(``flows/object_links/config.py``) both validate with these.
"""

from __future__ import annotations

import re
from typing import Any

# Salesforce API names: letters, digits, underscores, starting with a letter (custom: ``__c``).
# Nothing else can reach SOQL, so no quoting of identifiers is ever needed.
SALESFORCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(__c)?$")
SALESFORCE_NAME_MAX = 80

CRON_PRESETS = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})


def check_salesforce_name(value: str, what: str) -> str:
    if len(value) > SALESFORCE_NAME_MAX or not SALESFORCE_NAME.match(value):
        raise ValueError(
            f"{what} {value!r} is not a Salesforce API name (letters, digits and underscores, starting with a letter)"
        )
    return value


def check_schedule(value: str | None) -> str | None:
    """A 5-field cron expression or one of Airflow's presets (None: the default schedule)."""
    if value is None or value in CRON_PRESETS:
        return value
    from croniter import croniter  # Airflow's own cron parser; imported late to keep import cheap

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is neither a 5-field cron expression nor one of {', '.join(sorted(CRON_PRESETS))}")
    return value


def value_at(container: Any, *path: Any) -> Any:
    """What ``path`` (pydantic's ``loc``: keys and list positions) points at in raw JSON, or None."""
    for key in path:
        if isinstance(container, dict) and isinstance(key, str):
            container = container.get(key)
        elif isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
            container = container[key]
        else:
            return None
    return container


def pydantic_message(error: dict[str, Any]) -> str:
    """A pydantic error's message without pydantic's "Value error, " in front of our own validators' messages."""
    return error["msg"].removeprefix("Value error, ")

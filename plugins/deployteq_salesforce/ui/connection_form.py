"""The account settings form (the manual's "Account"): form <-> the Salesforce Airflow connection.

Pure logic, no Airflow.  Secrets are write-only: the form never shows them, an empty field keeps
what is stored.  Everything the form does not show (instance URL, budget extras, OAuth keys, the
connection type) is kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NEW_CONNECTION_TYPE = "deployteq_salesforce"
# The stock Salesforce hook also reads its extras with this prefix (older connections have them so).
STOCK_PREFIX = "extra__salesforce__"
ENVIRONMENTS = {"production": "Production (login.salesforce.com)", "sandbox": "Sandbox (test.salesforce.com)"}
FIELD_LABELS = {"login": "User name", "password": "Password", "security_token": "Security token", "environment": "Org"}


@dataclass(frozen=True)
class CurrentConnection:
    """What is stored, as far as the form may know it (secrets only as "is there one")."""

    conn_type: str | None = None
    login: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    has_password: bool = False

    def extra(self, name: str) -> Any:
        return self.extras.get(name, self.extras.get(STOCK_PREFIX + name))


@dataclass(frozen=True)
class FormProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{FIELD_LABELS[self.field]}: {self.message}"


@dataclass(frozen=True)
class ConnectionChange:
    """What to save: ``password`` None keeps the stored one; ``problems`` non-empty means save nothing."""

    conn_type: str
    login: str
    password: str | None
    extras: dict[str, Any]
    problems: list[FormProblem]


def form_values(current: CurrentConnection) -> dict[str, Any]:
    """The form's fields for what is stored: never a secret, only whether one is there."""
    domain = str(current.extra("domain") or "").strip()
    environment = "sandbox" if domain == "test" else "production" if domain in ("", "login") else "custom"
    return {
        "login": current.login or "",
        "environment": environment,
        "custom_domain": domain if environment == "custom" else "",
        "has_password": current.has_password,
        "has_token": bool(current.extra("security_token")),
        "password_is_session": current.has_password and not current.login,
    }


def _set_extra(extras: dict[str, Any], name: str, value: Any) -> None:
    """Set (or with None remove) an extra under the key the connection already uses for it."""
    key = STOCK_PREFIX + name if STOCK_PREFIX + name in extras and name not in extras else name
    if value is None:
        extras.pop(key, None)
    else:
        extras[key] = value


def apply_form(current: CurrentConnection, form: Mapping[str, str]) -> ConnectionChange:
    login = (form.get("login") or "").strip()
    password = form.get("password") or ""
    token = form.get("security_token") or ""
    environment = (form.get("environment") or "").strip()
    problems: list[FormProblem] = []
    if not login:
        problems.append(FormProblem("login", "enter the Salesforce user name (it looks like an e-mail address)"))
    if not password:
        if not current.has_password:
            problems.append(FormProblem("password", "enter the password of the Salesforce user"))
        elif not current.login:
            problems.append(
                FormProblem("password", "enter the user's password: the stored secret is a session id, not a password")
            )
    if environment not in (*ENVIRONMENTS, "custom"):
        problems.append(FormProblem("environment", f"choose production or sandbox, not {environment!r}"))

    extras = dict(current.extras)
    if token:
        _set_extra(extras, "security_token", token)
    elif form.get("clear_token"):
        _set_extra(extras, "security_token", None)
    if environment == "sandbox":
        _set_extra(extras, "domain", "test")
    elif environment == "production":
        _set_extra(extras, "domain", None)
    return ConnectionChange(
        conn_type=current.conn_type or NEW_CONNECTION_TYPE,
        login=login,
        password=password or None,
        extras=extras,
        problems=problems,
    )

"""Exceptions shared by the hooks and operators.

They import no Airflow so pure modules and tests can use them.
"""

from __future__ import annotations

from datetime import datetime


class DeployteqSalesforceError(Exception):
    """Base class of every error this provider raises on purpose."""


class ConfigurationError(DeployteqSalesforceError):
    """A mapping, link or connection setting is invalid; the message names what and where."""


class BudgetExhausted(DeployteqSalesforceError):
    """A Salesforce request was NOT sent because our own API budget would be exceeded.

    ``resume_at`` is the (UTC) moment from which budget is expected to be free again.
    """

    def __init__(self, message: str, *, resume_at: datetime, reason: str = "hourly") -> None:
        super().__init__(message)
        self.resume_at = resume_at
        self.reason = reason  # "hourly", "daily" or "blocked"


class BudgetLedgerBusy(DeployteqSalesforceError):
    """The shared API ledger stayed locked by another process; the request was NOT sent.

    The message names the budget key and the PostgreSQL session holding the lock.
    """


class SalesforceRequestLimitExceeded(BudgetExhausted):
    """Salesforce itself refused the token (403 REQUEST_LIMIT_EXCEEDED); it is blocked until ``resume_at``."""

    def __init__(self, message: str, *, since: datetime, resume_at: datetime) -> None:
        super().__init__(message, resume_at=resume_at, reason="blocked")
        self.since = since


class SalesforceSessionExpired(DeployteqSalesforceError):
    """Salesforce rejected the session (401 INVALID_SESSION_ID) and it cannot be renewed here.

    The message says which connection and what to do; it never contains the session id.
    """

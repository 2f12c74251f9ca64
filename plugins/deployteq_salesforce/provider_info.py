"""What Airflow knows about this provider without importing it: the ``apache_airflow_provider`` entry point.

Every ``airflow`` command calls ``get_provider_info()`` while it starts (and fails as a whole if this
module cannot be imported), so it imports nothing but the package's version and builds plain data.
Airflow 3 builds the connection form from ``conn-fields`` and ``ui-field-behaviour`` below, without
importing the hooks; the hooks take their ``conn_type`` from the constants here.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

from deployteq_salesforce import __version__

PACKAGE_NAME = "airflow-provider-deployteq-salesforce"
SALESFORCE_CONN_TYPE = "deployteq_salesforce"
DEPLOYTEQ_CONN_TYPE = "deployteq"
SALESFORCE_HOOK_NAME = "Salesforce (budgeted, Deployteq)"
DEPLOYTEQ_HOOK_NAME = "Deployteq (PostgreSQL)"
INTEGRATION = "Deployteq Salesforce"

_OPTIONAL_TEXT = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}


def _field(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": schema or dict(_OPTIONAL_TEXT)}


# The stock Salesforce connection's login fields (every login method of SalesforceHook), then our own.
SALESFORCE_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "instance_url": _field(
        "Instance URL",
        "Direct session: the org's URL (https://mydomain.my.salesforce.com); the Password field then holds "
        "the session id. Leave empty for username/password, JWT or client-credentials login.",
    ),
    "security_token": _field(
        "Security token",
        "Username/password login: the user's security token (Salesforce: Settings, Reset My Security Token).",
        **_SECRET,
    ),
    "domain": _field(
        "Domain",
        "Login host: empty or 'login' for production, 'test' for a sandbox, your My Domain host "
        "(mydomain.my.salesforce.com) for client credentials.",
        type=["string", "null"],
        examples=["login", "test"],
    ),
    "consumer_key": _field(
        "Consumer key",
        "OAuth 2.0 (JWT bearer or client credentials): the connected app's consumer key.",
    ),
    "consumer_secret": _field(
        "Consumer secret",
        "OAuth 2.0 client credentials: the connected app's consumer secret.",
        **_SECRET,
    ),
    "private_key": _field(
        "Private key",
        "OAuth 2.0 JWT bearer: the private key (PEM) of the connected app's certificate; "
        "or give 'Private key file path' instead.",
        **_SECRET,
    ),
    "private_key_file_path": _field(
        "Private key file path",
        "OAuth 2.0 JWT bearer: path of the private key (PEM) file on the Airflow workers.",
    ),
    "organization_id": _field(
        "Organization ID",
        "Only for the IP-filtering login of Self-Service users (rarely needed).",
    ),
    "hourly_budget": _field(
        "Hourly budget",
        "Salesforce API requests per rolling hour for all DAGs on this org together (default 3600). "
        "The Airflow Variable deployteq_salesforce_hourly_budget wins over this field.",
        type=["integer", "null"],
        minimum=1,
    ),
    "daily_share": _field(
        "Daily share",
        "At most this share (0 to 1) of the org's rolling 24-hour API allocation is ours (default 0.5); "
        "syncs also stop when the org has nothing left.",
        type=["number", "null"],
        minimum=0,
        maximum=1,
    ),
    "block_hours": _field(
        "Block hours",
        "How long Salesforce is expected to block the token after REQUEST_LIMIT_EXCEEDED, in hours (default 4).",
        type=["number", "null"],
        minimum=0,
    ),
    "ca_file": _field(
        "CA file",
        "Path of a CA bundle (PEM) to trust for the instance's TLS certificate; only for a local emulator "
        "or a TLS-inspecting proxy. Leave empty for Salesforce itself.",
    ),
    "budget_key": _field(
        "Budget key",
        "Which API budget the requests count against; connections to one org must share it "
        "(default: the instance URL, else username@domain).",
    ),
}

DEPLOYTEQ_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "deployteq_schema": _field(
        "Deployteq schema",
        "PostgreSQL schema with the customer table and the integration's own tables (run log, errors, "
        "watermarks, API ledger); the health check and every sync create and migrate it (default deployteq).",
        type=["string", "null"],
        maxLength=63,
    ),
}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata in Airflow's ``provider_info.schema.json`` format (read by the providers manager)."""
    triggers = trigger_modules()
    return {
        "package-name": PACKAGE_NAME,
        "name": "Deployteq Salesforce",
        # Shown in Admin -> Providers with every "`", "_", "<" and ">" removed: so the connection types
        # are named as the form's type list shows them.
        "description": (
            "Keeps Salesforce and a Deployteq customer database (PostgreSQL) in sync, both ways, within the "
            f"Salesforce API budget. Hooks: BudgetedSalesforceHook (connection type '{SALESFORCE_HOOK_NAME}') "
            f"and DeployteqHook (connection type '{DEPLOYTEQ_HOOK_NAME}'); existing Salesforce and Postgres "
            "connections work too."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.deployteq.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "deployteq_salesforce.hooks.salesforce",
                    "deployteq_salesforce.hooks.deployteq",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "deployteq_salesforce.operators.health",
                    "deployteq_salesforce.flows.customers.operator",
                    "deployteq_salesforce.flows.object_links.operator",
                    "deployteq_salesforce.flows.contact_moments.operator",
                    "deployteq_salesforce.flows.synchronize.operator",
                ],
            }
        ],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": triggers}] if triggers else [],
        "connection-types": [
            {
                "connection-type": SALESFORCE_CONN_TYPE,
                "hook-class-name": "deployteq_salesforce.hooks.salesforce.BudgetedSalesforceHook",
                "hook-name": SALESFORCE_HOOK_NAME,
                "conn-fields": SALESFORCE_CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port"],
                    "relabeling": {"login": "Username", "password": "Password or session id"},
                    "placeholders": {
                        "login": "etl@example.com (empty for a direct session or client credentials)",
                        "password": "password, or the session id of a direct session",
                        "extra": '{"retry_attempts": 4, "request_timeout": 300}',
                    },
                },
            },
            {
                "connection-type": DEPLOYTEQ_CONN_TYPE,
                "hook-class-name": "deployteq_salesforce.hooks.deployteq.DeployteqHook",
                "hook-name": DEPLOYTEQ_HOOK_NAME,
                "conn-fields": DEPLOYTEQ_CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Database"},
                    "placeholders": {
                        "host": "db.example.com (or a unix socket directory)",
                        "schema": "deployteq",
                        "port": "5432",
                        "extra": '{"sslmode": "require"}',
                    },
                },
            },
        ],
        # Loaded from here only with [core] lazy_discover_providers = False; otherwise through the
        # airflow.plugins entry point (see deployteq_salesforce.plugin.installed_plugin).
        "plugins": [
            {"name": "deployteq_salesforce", "plugin-class": "deployteq_salesforce.plugin.DeployteqSalesforcePlugin"}
        ],
    }


def trigger_modules() -> list[str]:
    """The modules of ``deployteq_salesforce/triggers/``, found on disk so a new trigger is listed without an edit."""
    folder = Path(__file__).parent / "triggers"
    return sorted(f"deployteq_salesforce.triggers.{m.name}" for m in pkgutil.iter_modules([str(folder)]))

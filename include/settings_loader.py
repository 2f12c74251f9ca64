"""Apply ``airflow_settings.yaml`` (astro CLI format) to a plain Airflow installation.

    python -m include.settings_loader [--file airflow_settings.yaml]

Creates or updates the connections, pools and variables in the file through Airflow's own
models, in one metadata-DB session, and prints what it created, updated, kept or left unchanged
(field names only: values may be secrets).  Running it again changes nothing.

What an operator changed in Airflow (UI, API, CLI) since the loader last applied the file is
kept, never overwritten silently: the loader records a fingerprint of what it applied per entry
(Variable ``deployteq_settings_loader_state``) and keeps an entry whose stored value no longer
matches it, saying so; ``--force`` overwrites such entries with the file's values.

Extension to the astro format: ``${NAME}`` in any string value is replaced by the
environment variable ``NAME`` (``${NAME:-default}`` falls back to ``default``; ``$${`` is a
literal ``${``).  A variable that is not set is an error naming the entry, so values that
differ per machine (emulator URL, session id, database host) stay out of the file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SETTINGS_FILE = ROOT / "airflow_settings.yaml"

SALESFORCE_POOL = "salesforce_api"
HOURLY_BUDGET_VARIABLE = "deployteq_salesforce_hourly_budget"
REQUESTS_PER_POOL_SLOT = 600

CONNECTION_KEYS = {
    "conn_id", "conn_type", "conn_host", "conn_schema", "conn_login",
    "conn_password", "conn_port", "conn_extra", "conn_description",
}
POOL_KEYS = {"pool_name", "pool_slot", "pool_description"}
VARIABLE_KEYS = {"variable_name", "variable_value", "variable_description"}
SECTIONS = {"connections": CONNECTION_KEYS, "pools": POOL_KEYS, "variables": VARIABLE_KEYS}
NAME_KEYS = {"connections": "conn_id", "pools": "pool_name", "variables": "variable_name"}

# Where the loader remembers what it applied: one fingerprint per entry (kind:name).
STATE_VARIABLE = "deployteq_settings_loader_state"
STATE_DESCRIPTION = (
    "Fingerprints of what include.settings_loader last applied, so that changes made in Airflow are kept; "
    "managed by the loader"
)
# Fingerprints cover secrets (connection passwords): a salted, slow hash so that whoever can read
# Variables cannot test guesses of a password against them cheaply.
FINGERPRINT_ITERATIONS = 100_000
KEPT_CHANGED = "changed in Airflow since the last load; --force to overwrite"
KEPT_UNKNOWN = "differs from the file and was not set by this loader; --force to overwrite"

_ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """The settings file is invalid; the message names the entry and what to change."""


def pool_slots_for_budget(hourly_budget: int) -> int:
    """Pool size for a given hourly Salesforce API budget.

    Pools cap concurrency, not rate: the budgeted client enforces the rate.  One slot per 600
    requests/hour gives every running Salesforce task at least ~10 requests a minute of the
    budget; more tasks at once would only wait (defer) on the budget, holding nothing useful.
    """
    return max(1, int(hourly_budget) // REQUESTS_PER_POOL_SLOT)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ConnectionSpec:
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict | None = None
    description: str | None = None


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class VariableSpec:
    key: str
    value: str
    description: str | None = None


@dataclass(frozen=True)
class AirflowSettings:
    connections: list[ConnectionSpec] = field(default_factory=list)
    pools: list[PoolSpec] = field(default_factory=list)
    variables: list[VariableSpec] = field(default_factory=list)


def expand_env(value: Any, *, where: str, environ: Mapping[str, str]) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in strings (recursively in dicts and lists)."""
    if isinstance(value, dict):
        return {key: expand_env(item, where=f"{where}.{key}", environ=environ) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, where=f"{where}[{i}]", environ=environ) for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise SettingsError(
            f"{where}: environment variable {name} is not set (the file says ${{{name}}}); "
            f"set it, or write the value into the file"
        )

    return _ENV_REFERENCE.sub(substitute, value)


def load_settings_file(path: str | Path = DEFAULT_SETTINGS_FILE, *, environ: Mapping[str, str] | None = None) -> AirflowSettings:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {error}") from None
    return parse_settings(raw, environ=os.environ if environ is None else environ)


def parse_settings(raw: Any, *, environ: Mapping[str, str]) -> AirflowSettings:
    if not isinstance(raw, dict) or not isinstance(raw.get("airflow"), dict):
        raise SettingsError("the file must have a top-level 'airflow:' mapping (astro CLI format)")
    airflow = raw["airflow"]
    unknown = set(airflow) - set(SECTIONS)
    if unknown:
        raise SettingsError(f"airflow: unknown section(s) {sorted(unknown)}; expected {sorted(SECTIONS)}")

    entries: dict[str, list[tuple[str, dict]]] = {}
    for section, allowed in SECTIONS.items():
        items = airflow.get(section) or []
        if not isinstance(items, list):
            raise SettingsError(f"airflow.{section} must be a list of entries")
        entries[section] = []
        for index, item in enumerate(items):
            where = f"{section}[{index}]"
            if not isinstance(item, dict):
                raise SettingsError(f"{where}: each entry must be a mapping, got {type(item).__name__}")
            name_key = NAME_KEYS[section]
            if item.get(name_key):
                where = f"{where} ({name_key} {item[name_key]!r})"
            bad = set(item) - allowed
            if bad:
                raise SettingsError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")
            entries[section].append((where, expand_env(item, where=where, environ=environ)))

    settings = AirflowSettings(
        connections=[_connection(where, item) for where, item in entries["connections"]],
        pools=[_pool(where, item) for where, item in entries["pools"]],
        variables=[_variable(where, item) for where, item in entries["variables"]],
    )
    for kind, names in (
        ("connection", [c.conn_id for c in settings.connections]),
        ("pool", [p.name for p in settings.pools]),
        ("variable", [v.key for v in settings.variables]),
    ):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SettingsError(f"{kind} {duplicates[0]!r} is defined more than once")
    return settings


def _required_text(where: str, item: dict, key: str) -> str:
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SettingsError(f"{where}: {key} is required")
    if not isinstance(value, str):
        raise SettingsError(f"{where}: {key} must be text, got {value!r}")
    return value.strip()


def _optional_text(where: str, item: dict, key: str) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        raise SettingsError(f"{where}: {key} must be text, got a {type(value).__name__}")
    return str(value)


def _integer(where: str, key: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"{where}: {key} must be a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{where}: {key} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{where}: {key} must be at least {minimum}, got {number}")
    return number


def _connection(where: str, item: dict) -> ConnectionSpec:
    conn_id = _required_text(where, item, "conn_id")
    if not re.fullmatch(r"[\w.\-]+", conn_id):
        raise SettingsError(f"{where}: conn_id may only hold letters, digits, '_', '.' and '-'")
    port = item.get("conn_port")
    extra = item.get("conn_extra")
    if isinstance(extra, str) and extra.strip():
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as error:
            raise SettingsError(f"{where}: conn_extra is text but not JSON ({error}); write it as a mapping") from None
    if extra in (None, "", {}):
        extra = None
    elif not isinstance(extra, dict):
        raise SettingsError(f"{where}: conn_extra must be a mapping (or a JSON object), got {type(extra).__name__}")
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=_required_text(where, item, "conn_type"),
        host=_optional_text(where, item, "conn_host"),
        schema=_optional_text(where, item, "conn_schema"),
        login=_optional_text(where, item, "conn_login"),
        password=_optional_text(where, item, "conn_password"),
        port=None if port in (None, "") else _integer(where, "conn_port", port, minimum=1),
        extra=extra,
        description=_optional_text(where, item, "conn_description"),
    )


def _pool(where: str, item: dict) -> PoolSpec:
    if item.get("pool_slot") in (None, ""):
        raise SettingsError(f"{where}: pool_slot is required")
    return PoolSpec(
        name=_required_text(where, item, "pool_name"),
        slots=_integer(where, "pool_slot", item["pool_slot"], minimum=-1),
        description=_optional_text(where, item, "pool_description") or "",
    )


def _variable(where: str, item: dict) -> VariableSpec:
    if "variable_value" not in item or item["variable_value"] is None:
        raise SettingsError(f"{where}: variable_value is required")
    value = item["variable_value"]
    # Airflow stores text; structured values are stored as JSON (read with deserialize_json=True).
    text = value if isinstance(value, str) else json.dumps(value)
    return VariableSpec(
        key=_required_text(where, item, "variable_name"),
        value=text,
        description=_optional_text(where, item, "variable_description"),
    )


def consistency_warnings(settings: AirflowSettings) -> list[str]:
    """Things that are valid but probably not meant (printed, not fatal)."""
    warnings = []
    budget = next((v.value for v in settings.variables if v.key == HOURLY_BUDGET_VARIABLE), None)
    pool = next((p for p in settings.pools if p.name == SALESFORCE_POOL), None)
    if budget is not None and pool is not None:
        try:
            expected = pool_slots_for_budget(int(budget))
        except ValueError:
            warnings.append(f"variable {HOURLY_BUDGET_VARIABLE} should be a whole number, got {budget!r}")
        else:
            if pool.slots != expected:
                warnings.append(
                    f"pool {SALESFORCE_POOL} has {pool.slots} slots; for an hourly budget of {budget} "
                    f"the rule max(1, budget // {REQUESTS_PER_POOL_SLOT}) gives {expected}"
                )
    return warnings


# --------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class Change:
    kind: str  # "connection", "pool" or "variable"
    name: str
    action: str  # "created", "updated", "kept" or "unchanged"
    fields: tuple[str, ...] = ()
    reason: str = ""  # why a differing entry was kept, or that a forced update overwrote a change

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        reason = f": {self.reason}" if self.reason else ""
        return f"{self.kind} {self.name}: {self.action}{detail}{reason}"


@dataclass
class _Entry:
    """One entry of the file as the apply step sees it: what the file wants, what Airflow holds."""

    kind: str
    name: str
    wanted: dict[str, Any]
    current: dict[str, Any] | None  # None: not in Airflow yet

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def changed_fields(self) -> tuple[str, ...]:
        return tuple(name for name, value in self.wanted.items() if self.current is None or self.current[name] != value)


class LoaderState:
    """The fingerprints of what the loader applied, kept in a Variable of the same metadata DB."""

    def __init__(self, raw: str | None) -> None:
        try:
            data = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            data = {}
        data = data if isinstance(data, dict) else {}
        self.salt = str(data.get("salt") or secrets.token_hex(16))
        applied = data.get("applied")
        self.applied: dict[str, str] = dict(applied) if isinstance(applied, dict) else {}

    def fingerprint(self, values: dict[str, Any]) -> str:
        canonical = json.dumps(values, sort_keys=True, default=str).encode()
        return hashlib.pbkdf2_hmac("sha256", canonical, self.salt.encode(), FINGERPRINT_ITERATIONS).hex()

    def text(self) -> str:
        return json.dumps({"salt": self.salt, "applied": dict(sorted(self.applied.items()))}, indent=1)


def decide(entry: _Entry, state: LoaderState, *, force: bool) -> Change:
    """What to do with one entry: create, update, keep (changed in Airflow) or leave unchanged."""
    fields = entry.changed_fields
    if entry.current is None:
        return Change(entry.kind, entry.name, "created")
    if not fields:
        return Change(entry.kind, entry.name, "unchanged")
    recorded = state.applied.get(entry.key)
    untouched = recorded is not None and recorded == state.fingerprint(entry.current)
    if not untouched and not force:
        return Change(entry.kind, entry.name, "kept", fields, KEPT_CHANGED if recorded else KEPT_UNKNOWN)
    return Change(entry.kind, entry.name, "updated", fields, "" if untouched else "--force overwrote a change made in Airflow")


def apply_settings(settings: AirflowSettings, *, force: bool = False) -> list[Change]:
    """Create or update everything in ``settings`` in Airflow's metadata DB, in one transaction.

    An existing entry that differs from the file is updated only when Airflow still holds what the
    loader applied last time (or with ``force``); otherwise it is kept and reported as ``kept``.
    """
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    kinds = (
        (settings.connections, _ConnectionEntries()),
        (settings.pools, _PoolEntries()),
        (settings.variables, _VariableEntries()),
    )
    changes = []
    with create_session() as session:
        stored_state = session.scalar(select(Variable).where(Variable.key == STATE_VARIABLE))
        state = LoaderState(stored_state.val if stored_state is not None else None)
        for specs, entries in kinds:
            for spec in specs:
                existing = entries.find(session, spec)
                wanted = entries.wanted(spec)
                entry = _Entry(entries.kind, entries.name(spec), wanted, entries.values(existing) if existing is not None else None)
                change = decide(entry, state, force=force)
                if change.action == "created":
                    existing = entries.create(session, spec)
                    session.flush()
                elif change.action == "updated":
                    entries.update(existing, spec, change.fields)
                if change.action != "kept":  # what Airflow holds now is the file's (as Airflow stores it)
                    state.applied[entry.key] = state.fingerprint(entries.values(existing))
                changes.append(change)
        if stored_state is None:
            session.add(Variable(key=STATE_VARIABLE, val=state.text(), description=STATE_DESCRIPTION))
        elif stored_state.val != state.text():
            stored_state.val = state.text()
    return changes


class _ConnectionEntries:
    kind = "connection"

    @staticmethod
    def name(spec: ConnectionSpec) -> str:
        return spec.conn_id

    @staticmethod
    def find(session, spec: ConnectionSpec):
        from airflow.models.connection import Connection
        from sqlalchemy import select

        return session.scalar(select(Connection).where(Connection.conn_id == spec.conn_id))

    @staticmethod
    def wanted(spec: ConnectionSpec) -> dict[str, Any]:
        return {
            "conn_type": spec.conn_type, "host": spec.host, "schema": spec.schema, "login": spec.login,
            "password": spec.password, "port": spec.port, "description": spec.description, "extra": spec.extra,
        }

    @staticmethod
    def values(conn) -> dict[str, Any]:
        """The fields the loader manages, as Airflow holds them (decrypted; empty text is None)."""
        values = {name: getattr(conn, name) or None for name in ("conn_type", "host", "schema", "login", "password")}
        values.update(port=conn.port, description=conn.description or None)
        values["extra"] = (conn.extra_dejson or None) if conn.extra else None
        return values

    @staticmethod
    def create(session, spec: ConnectionSpec):
        from airflow.models.connection import Connection

        wanted = _ConnectionEntries.wanted(spec)
        conn = Connection(conn_id=spec.conn_id, **{**wanted, "extra": json.dumps(spec.extra) if spec.extra else None})
        session.add(conn)
        return conn

    @staticmethod
    def update(conn, spec: ConnectionSpec, fields: tuple[str, ...]) -> None:
        wanted = _ConnectionEntries.wanted(spec)
        for name in fields:
            setattr(conn, name, json.dumps(spec.extra) if name == "extra" and spec.extra else wanted[name])


class _PoolEntries:
    kind = "pool"

    @staticmethod
    def name(spec: PoolSpec) -> str:
        return spec.name

    @staticmethod
    def find(session, spec: PoolSpec):
        from airflow.models.pool import Pool
        from sqlalchemy import select

        return session.scalar(select(Pool).where(Pool.pool == spec.name))

    @staticmethod
    def wanted(spec: PoolSpec) -> dict[str, Any]:
        return {"slots": spec.slots, "description": spec.description}

    @staticmethod
    def values(pool) -> dict[str, Any]:
        return {"slots": pool.slots, "description": pool.description or ""}

    @staticmethod
    def create(session, spec: PoolSpec):
        from airflow.models.pool import Pool

        # include_deferred=False: a task waiting (deferred) for API budget frees its slot.
        pool = Pool(pool=spec.name, slots=spec.slots, description=spec.description, include_deferred=False)
        session.add(pool)
        return pool

    @staticmethod
    def update(pool, spec: PoolSpec, fields: tuple[str, ...]) -> None:
        for name in fields:
            setattr(pool, name, _PoolEntries.wanted(spec)[name])


class _VariableEntries:
    kind = "variable"

    @staticmethod
    def name(spec: VariableSpec) -> str:
        return spec.key

    @staticmethod
    def find(session, spec: VariableSpec):
        from airflow.models.variable import Variable
        from sqlalchemy import select

        return session.scalar(select(Variable).where(Variable.key == spec.key))

    @staticmethod
    def wanted(spec: VariableSpec) -> dict[str, Any]:
        return {"value": spec.value, "description": spec.description}

    @staticmethod
    def values(variable) -> dict[str, Any]:
        return {"value": variable.val, "description": variable.description or None}

    @staticmethod
    def create(session, spec: VariableSpec):
        from airflow.models.variable import Variable

        variable = Variable(key=spec.key, val=spec.value, description=spec.description)
        session.add(variable)
        return variable

    @staticmethod
    def update(variable, spec: VariableSpec, fields: tuple[str, ...]) -> None:
        if "value" in fields:
            variable.val = spec.value
        if "description" in fields:
            variable.description = spec.description


def summary(changes: list[Change]) -> str:
    counts = {action: sum(c.action == action for c in changes) for action in ("created", "updated", "kept", "unchanged")}
    return ", ".join(f"{n} {action}" for action, n in counts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.settings_loader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default=str(DEFAULT_SETTINGS_FILE), help="settings file (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="also overwrite entries that were changed in Airflow since the last load")
    args = parser.parse_args(argv)
    try:
        settings = load_settings_file(args.file)
    except SettingsError as error:
        print(f"error: {args.file}: {error}", file=sys.stderr)
        return 2
    for warning in consistency_warnings(settings):
        print(f"warning: {warning}")
    changes = apply_settings(settings, force=args.force)
    for change in changes:
        print(change)
    print(f"Applied {args.file}: {summary(changes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

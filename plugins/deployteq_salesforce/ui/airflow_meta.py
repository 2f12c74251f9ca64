"""What the Salesforce pages read from and write to Airflow's own metadata: Variables, the Salesforce
Connection, DAG schedules and the task instances behind the run log.

Runs inside the API server, in a request; every function opens its own metadata-DB session through
Airflow's models (``create_session``) and changes only what its name says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

# -------------------------------------------------------------------------------------- Variables


def get_variable(key: str) -> str | None:
    from airflow.models import Variable

    return Variable.get(key, default_var=None)


def set_variable(key: str, value: str) -> None:
    """Save a Variable, keeping its description."""
    from airflow.models import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        existing = session.scalar(select(Variable).where(Variable.key == key))
        description = existing.description if existing is not None else None
    Variable.set(key, value, description=description)


# -------------------------------------------------------------------------------------- DAGs


@dataclass(frozen=True)
class DagSchedule:
    """A DAG as the scheduler sees it: paused or not, and when its next run is due."""

    dag_id: str
    paused: bool
    next_run: datetime | None


def dag_schedules(dag_ids: Iterable[str]) -> dict[str, DagSchedule]:
    """The DAGs among ``dag_ids`` that Airflow knows (parsed at least once)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    wanted = sorted(set(dag_ids))
    if not wanted:
        return {}
    with create_session() as session:
        rows = session.scalars(select(DagModel).where(DagModel.dag_id.in_(wanted))).all()
        return {
            dag.dag_id: DagSchedule(dag.dag_id, bool(dag.is_paused), dag.next_dagrun_create_after)
            for dag in rows
        }


@cache
def _run_log_operators() -> frozenset[str]:
    """Class names of our operators: the tasks that write the run log (``TaskInstance.operator``)."""
    import importlib
    import pkgutil

    import deployteq_salesforce.operators as operators
    from deployteq_salesforce.core.operator import DeployteqSalesforceOperator

    for module in pkgutil.iter_modules(operators.__path__):  # every operator of the provider is importable there
        importlib.import_module(f"{operators.__name__}.{module.name}")
    names, todo = set(), [DeployteqSalesforceOperator]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(names)


def flow_tasks(runs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(dag_id, run_id) -> the task of ours in that DAG run, where there is exactly one (its log is the run's log)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    pairs = {(run["dag_id"], run["run_id"]) for run in runs if run.get("dag_id") and run.get("run_id")}
    if not pairs:
        return {}
    found: dict[tuple[str, str], set[str]] = {}
    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id).where(
                TaskInstance.dag_id.in_({dag for dag, _ in pairs}),
                TaskInstance.run_id.in_({run for _, run in pairs}),
                TaskInstance.operator.in_(_run_log_operators()),
            )
        )
        for dag_id, run_id, task_id in rows:
            if (dag_id, run_id) in pairs:
                found.setdefault((dag_id, run_id), set()).add(task_id)
    return {pair: next(iter(tasks)) for pair, tasks in found.items() if len(tasks) == 1}


# -------------------------------------------------------------------------------------- the Connection


@dataclass(frozen=True)
class StoredConnection:
    """The connection as the account form needs it; the password only as "is there one".  The extras hold
    secrets too (the security token): the form keeps them and never renders them."""

    conn_id: str
    in_database: bool
    from_environment: bool  # an AIRFLOW_CONN_* variable defines it and wins over the database
    conn_type: str | None
    login: str | None
    extras: dict[str, Any]
    has_password: bool


def stored_connection(conn_id: str) -> StoredConnection:
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from_environment = f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ
    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        if conn is None:
            return StoredConnection(conn_id, False, from_environment, None, None, {}, False)
        return StoredConnection(
            conn_id, True, from_environment, conn.conn_type, conn.login, dict(conn.extra_dejson or {}), bool(conn.password)
        )


def save_connection(conn_id: str, *, conn_type: str, login: str | None, password: str | None, extras: dict[str, Any], user: Any) -> None:
    """Create or update the connection with Airflow's own connection API models, and audit-log who did it.

    ``password`` None keeps the stored one (write-only secrets); other fields are replaced.
    """
    from airflow.api_fastapi.core_api.datamodels.connections import ConnectionBody
    from airflow.api_fastapi.core_api.services.public.connections import update_orm_from_pydantic
    from airflow.models import Connection
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    fields = {"conn_type": conn_type, "login": login, "extra": json.dumps(extras)}
    if password is not None:
        fields["password"] = password
    body = ConnectionBody(connection_id=conn_id, **fields)
    with create_session() as session:
        existing = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        if existing is None:
            session.add(Connection(conn_id=conn_id, conn_type=conn_type, login=login, password=password, extra=fields["extra"]))
        else:
            update_orm_from_pydantic(existing, body, list(fields))
        session.add(
            Log(
                event="deployteq_salesforce_account_settings",
                owner=user.get_name(),
                owner_display_name=user.get_name(),
                extra=json.dumps({"connection_id": conn_id, "changed": sorted(fields), "created": existing is None}),
            )
        )

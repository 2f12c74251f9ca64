"""Reading Airflow Variables wherever our code runs: DAG parsing, tasks, in-process scripts."""

from __future__ import annotations

import logging
import os

from deployteq_salesforce.core.exceptions import ConfigurationError

log = logging.getLogger(__name__)


def read_variable(name: str, default: str | None = None) -> str | None:
    """A Variable at parse time: the environment (AIRFLOW_VAR_*), then Airflow's store.

    The DAG processor answers ``airflow.sdk.Variable`` through its supervisor; a DagBag parsed
    in-process (``make demo``, ``dag.test()`` scripts) has no supervisor, so the metadata DB is asked
    directly there.
    """
    env = os.environ.get(f"AIRFLOW_VAR_{name.upper()}")
    if env is not None:
        return env
    try:
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
        if value is not None:
            return value
    except Exception as exc:
        log.debug("Variable %s not available through the task SDK (%s)", name, exc)
    try:
        from airflow.models.variable import Variable as StoredVariable

        return StoredVariable.get(name, default_var=default)
    except Exception as exc:
        # A DAG file must not silently generate no DAGs: this becomes an import error in the UI.
        raise ConfigurationError(
            f"The Airflow Variable {name!r} could not be read ({type(exc).__name__}: {exc}); the DAGs and tasks "
            "configured by it cannot be built. Check that Airflow's metadata database (or the API server) is "
            "reachable from this process, or set the Variable as environment variable "
            f"AIRFLOW_VAR_{name.upper()}."
        ) from exc


def require_variable(name: str) -> str:
    """A Variable a task cannot do without; a clear error when it is not set."""
    value = read_variable(name)
    if value is None:
        raise ConfigurationError(
            f"The Airflow Variable {name!r} is not set; create it (Admin -> Variables, or airflow_settings.yaml)."
        )
    return value


SCHEDULES_VARIABLE = "deployteq_salesforce_schedules"


def schedule_for(dag_id: str, default):
    """A fixed DAG's schedule, overridable without code edits: the Variable ``deployteq_salesforce_schedules``
    holds ``{"<dag_id>": "<cron or preset>"}`` (e.g. shorter schedules for ``make soak``); read at parse time."""
    import json

    raw = read_variable(SCHEDULES_VARIABLE)
    if not raw:
        return default
    try:
        schedules = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"The Airflow Variable {SCHEDULES_VARIABLE!r} is not JSON: {exc}") from None
    if not isinstance(schedules, dict) or not all(isinstance(v, str) and v.strip() for v in schedules.values()):
        raise ConfigurationError(
            f"The Airflow Variable {SCHEDULES_VARIABLE!r} must be a JSON object of dag_id -> cron expression or preset, "
            f'e.g. {{"deployteq_contact_moments": "*/15 * * * *"}}'
        )
    return schedules.get(dag_id, default)

"""The demo environment runs the project's DAGs: they are switched on, except where a person paused them.

Airflow creates DAGs paused (``dags_are_paused_at_creation``), so after ``make ui`` nothing would run
until every DAG is switched on by hand.  The demo sets ``AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION``
to False for DAGs created from now on, and ``unpause_project_dags`` switches on the ones earlier
demo runs created paused.  A DAG whose pause switch a person used (Airflow's audit log has the UI's
or the CLI's pause/unpause for it) is left as it is.  Production keeps Airflow's default.
"""

from __future__ import annotations

from collections.abc import Iterable

# Audit-log events of a person using a DAG's pause switch: the UI / REST API (one DAG, or many by
# pattern: no dag_id on the row) and the CLI.
PAUSE_EVENTS = ("patch_dag", "cli_dag_pause", "cli_dag_unpause")
BULK_PAUSE_EVENT = "patch_dags"


def unpause_project_dags(dag_ids: Iterable[str] | None = None) -> list[str]:
    """Unpause every paused DAG (of ``dag_ids``, default: of this Airflow) nobody paused by hand; returns their ids."""
    from airflow.models.dag import DagModel
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if session.scalar(select(Log.id).where(Log.event == BULK_PAUSE_EVENT).limit(1)) is not None:
            return []  # someone paused or unpaused DAGs in bulk: every switch is theirs
        touched = set(session.scalars(select(Log.dag_id).where(Log.event.in_(PAUSE_EVENTS), Log.dag_id.is_not(None))))
        query = select(DagModel).where(DagModel.is_paused, DagModel.is_stale.is_(False))
        if dag_ids is not None:
            query = query.where(DagModel.dag_id.in_(list(dag_ids)))
        paused = session.scalars(query).all()
        switched = sorted(dag.dag_id for dag in paused if dag.dag_id not in touched)
        for dag in paused:
            if dag.dag_id in switched:
                dag.is_paused = False
    return switched

"""Salesforce Synchronize (R13-R15): a campaign step that updates Leads/Contacts from Deployteq customers.

``SalesforceSynchronizeOperator`` sends the chosen mapped fields of the selected customers to
Salesforce, matched on the Salesforce Id, and stores per run and customer which exit it took
(``synchronize_outcome``).  Its XCom is a small summary: counts per exit and the ``run_key``.
``SynchronizeExitBranchOperator`` follows ``continue`` always and every other exit that holds
records; a task behind an exit reads its own customer ids with :func:`synchronize_exit_ids`.
:func:`synchronize_exits` wires the branch and the exit tasks in one call (TaskFlow friendly).

A run that meets the end of the API budget (ours, or Salesforce blocking the token) does not fail
and does not wait: the records not sent go to ``on_limit``.  Running the same task again (a retry,
or "clear" in the UI) continues the same run: only ``pending`` and ``on_limit`` records are sent,
nothing that reached Salesforce is sent twice.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any



try:  # Airflow 3.3 ships the branch base in the Task SDK; older 3.x in the standard provider
    from airflow.sdk.bases.branch import BaseBranchOperator
except ImportError:  # pragma: no cover
    from airflow.providers.standard.operators.branch import BaseBranchOperator

from deployteq_salesforce.assets import SALESFORCE_OBJECTS
from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.core.datasets import SALESFORCE, Written
from deployteq_salesforce.flows.customers.config import ConfiguredObject, load_objects_config
from deployteq_salesforce.flows.customers.mapping import inverse_translations
from deployteq_salesforce.core.operator import DeployteqSalesforceOperator, running_flow
from deployteq_salesforce.core.variables import require_variable
from deployteq_salesforce.core.exceptions import BudgetExhausted, ConfigurationError, SalesforceRequestLimitExceeded
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import COMPOSITE_CHUNK, BudgetedSalesforceHook
from deployteq_salesforce.core.salesforce_errors import parse_bulk_error
from deployteq_salesforce.core.soql import ids_query
from deployteq_salesforce.flows.synchronize.store import SynchronizeStore
from deployteq_salesforce.core.timing import BOOKKEEPING, LOOKUP, MAP, PhaseTimer
from deployteq_salesforce.flows.synchronize.logic import (
    BUDGET,
    CONTINUE,
    EXITS,
    ON_ERROR,
    ON_LIMIT,
    ON_SUCCESS,
    RECORD_EXITS,
    REQUEST_LIMIT_EXCEEDED,
    TARGETS,
    FieldPlan,
    choose_target,
    Outcome,
    Update,
    is_converted_lead_error,
    outcome_from_result,
    plan_fields,
    plan_updates,
    redirect_to_contact,
)

OBJECTS_VARIABLE = "deployteq_salesforce_objects"
DEFAULT_BULK_THRESHOLD = 2000  # above this many updates per object one Bulk API 2.0 job is cheaper
# requests one Bulk ingest job costs: create, upload, close, status (+ a second status, failed results)
BULK_JOB_REQUESTS = 6
_TABLE_NAME = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$")


# ------------------------------------------------------------------------------------------- the work


class SynchronizeRun:
    """One attempt of a run: route, send in batches, store outcomes as they come."""

    def __init__(self, *, run_key: str, target: str, objects: Mapping[str, ConfiguredObject], plan: FieldPlan,
                 salesforce: BudgetedSalesforceHook, outcomes: SynchronizeStore, bulk_threshold: int, log):
        self.run_key = run_key
        self.target = target
        self.objects = objects
        self.plan = plan
        self.salesforce = salesforce
        self.outcomes = outcomes
        self.bulk_threshold = bulk_threshold
        self.log = log
        self.types: dict[str, dict[str, str]] = {}
        self.stopped: BudgetExhausted | None = None  # set once the budget ran out: everything after goes to on_limit
        self.customers: dict[int, Mapping[str, Any]] = {}  # the chunk being sent
        self.claimed: dict[tuple[str, str], int] = {}  # contested Salesforce records this run already updates
        self.contested: set[str] = set()

    def run(self) -> None:
        phases = self.salesforce.phases
        with phases.phase(LOOKUP):
            self.contested = self.outcomes.contested_ids(self.run_key)
        for work in phases.iterate(LOOKUP, self.outcomes.work(self.run_key, self.plan.columns)):
            self._run_chunk(work)

    def _run_chunk(self, work: list[dict[str, Any]]) -> None:
        self.customers = {row["customer_id"]: row for row in work}
        # a Lead step needs Contact's describe only for leads converted to a known contact
        needed = ["Lead", "Contact"] if self.target == "auto" else [self.target]
        if self.target == "Lead" and any(row.get("sf_lead_id") and row.get("sf_contact_id") for row in work):
            needed.append("Contact")
        try:
            for sobject in needed:
                if sobject in self.plan.rows:
                    self._describe(sobject)
        except BudgetExhausted as exc:
            self._stop(exc)
            # R15 holds without Salesforce: customers without the needed id still go to on_error
            routed = [choose_target(row, self.target, "Contact" in self.plan.rows) for row in work]
            self.outcomes.save(self.run_key, [
                r if isinstance(r, Outcome) else self._limited_customer(row["customer_id"]) for r, row in zip(routed, work)
            ])
            return
        with self.salesforce.phases.phase(MAP):
            updates, rejected = plan_updates(work, target=self.target, plan=self.plan, salesforce_types=self.types,
                                             claimed=self.claimed, contested=self.contested)
        self.outcomes.save(self.run_key, rejected)
        if rejected:
            self.log.info("%s of %s customers go to on_error without reaching Salesforce (first: %s)",
                          len(rejected), len(work), rejected[0].reason)
        converted: list[Update] = []
        for sobject in ("Lead", "Contact"):
            group = [u for u in updates if u.sobject == sobject]
            if group:
                converted += self._send(sobject, group)
        if converted:
            self._redirect_converted(converted)

    # -- Salesforce ------------------------------------------------------------------------------------

    def _describe(self, sobject: str) -> None:
        if sobject in self.types:
            return
        if self.stopped is not None:
            raise self.stopped
        describe = getattr(self.salesforce.get_conn(), sobject).describe()
        fields = {f["name"]: f for f in describe.get("fields", [])}
        problems = []
        for row in self.plan.rows.get(sobject, ()):
            field = fields.get(row.salesforce_field)
            if field is None:
                problems.append(f"{sobject}.{row.salesforce_field} does not exist according to describe")
            elif field.get("updateable") is False:
                problems.append(f"{sobject}.{row.salesforce_field} is not updateable; leave it out of the fields sent")
        if problems:
            raise ConfigurationError("Salesforce Synchronize cannot send these fields; nothing was sent:\n"
                                     + "\n".join(f"- {p}" for p in problems))
        self.types[sobject] = {name: f.get("type") for name, f in fields.items()}

    def _stop(self, exc: BudgetExhausted) -> None:
        if self.stopped is None:
            self.stopped = exc
            self.log.warning("Salesforce API budget reached (%s): records not sent yet go to on_limit. %s", exc.reason, exc)

    def _limit_reason(self) -> tuple[str, str]:
        exc = self.stopped
        code = REQUEST_LIMIT_EXCEEDED if isinstance(exc, SalesforceRequestLimitExceeded) else BUDGET
        return f"{exc} (resumes at {exc.resume_at.isoformat()})", code

    def _limited_customer(self, customer_id: int) -> Outcome:
        reason, code = self._limit_reason()
        return Outcome(customer_id, ON_LIMIT, reason=f"not sent: {reason}", status_code=code)

    def _limited(self, updates: Iterable[Update]) -> list[Outcome]:
        reason, code = self._limit_reason()
        return [u.limited(reason, status_code=code) for u in updates]

    def _send(self, sobject: str, updates: list[Update]) -> list[Update]:
        """Send one object's updates; returns the leads Salesforce reports as converted (to redirect)."""
        if self.stopped is not None:
            self.outcomes.save(self.run_key, self._limited(updates))
            return []
        if len(updates) > self.bulk_threshold and self._bulk_fits():
            return self._send_bulk(sobject, updates)
        converted: list[Update] = []
        for start in range(0, len(updates), COMPOSITE_CHUNK):
            chunk = updates[start : start + COMPOSITE_CHUNK]
            if self.stopped is not None:
                self.outcomes.save(self.run_key, self._limited(chunk))
                continue
            try:
                results = self.salesforce.composite("PATCH", sobject, [u.payload for u in chunk], all_or_none=False)
            except BudgetExhausted as exc:
                # one chunk per call: completed_results is empty, the chunk was not sent
                done = list(getattr(exc, "completed_results", []) or [])
                self._stop(exc)
                finished = [outcome_from_result(u, r) for u, r in zip(chunk, done)]
                self.outcomes.save(self.run_key, finished + self._limited(chunk[len(done):]))
                continue
            outcomes = [outcome_from_result(u, r) for u, r in zip(chunk, results)]
            converted += [u for u, o in zip(chunk, outcomes) if is_converted_lead_error(o)]
            self.outcomes.save(self.run_key, [o for o in outcomes if not is_converted_lead_error(o)])
        return converted

    def _bulk_fits(self) -> bool:
        """A Bulk job is only started with budget for all its requests, so it is never cut short half-way."""
        status = self.salesforce.budget_status()
        room = status.hourly_remaining
        if status.daily_limit is not None:
            room = min(room, status.daily_limit - status.daily_used)
        if status.blocked or room < BULK_JOB_REQUESTS:
            self.log.info("Budget left (%s requests) is too small for a Bulk job; sending composite batches", room)
            return False
        return True

    def _send_bulk(self, sobject: str, updates: list[Update]) -> list[Update]:
        columns = ["Id", *self.plan.salesforce_fields(sobject)]
        try:
            with self.salesforce.phases.phase(MAP):  # the CSV (the job's requests are timed on their own)
                result = Bulk2Client(self.salesforce.get_conn()).ingest(
                    sobject, "update", (u.payload for u in updates), columns=columns, want_successful=False
                )
        except BudgetExhausted as exc:
            self._stop(exc)
            reason, code = self._limit_reason()
            reason += "; if the Bulk job was already closed Salesforce may have applied it, sending again writes the same values"
            self.outcomes.save(self.run_key, [u.limited(reason, status_code=code) for u in updates])
            return []
        failed: dict[str, str] = {}
        for row in result.failed:
            record_id = (row.get("Id") or row.get("sf__Id") or "").lower()
            failed[record_id] = row.get("sf__Error", "")
        succeeded, outcomes, converted = [], [], []
        for update in updates:
            error = failed.get(update.sf_id.lower())
            if error is None:
                succeeded.append(update)
                continue
            code, message, fields = parse_bulk_error(error)
            outcome = update.failed(code, message, fields, sent_via="bulk")
            if is_converted_lead_error(outcome):
                converted.append(update)
            else:
                outcomes.append(outcome)
        self.outcomes.save_succeeded(self.run_key, sobject, succeeded, sent_via="bulk")
        self.outcomes.save(self.run_key, outcomes)
        self.log.info("Bulk update of %s %s records (job %s): %s failed", len(updates), sobject, result.job_id, len(failed))
        return converted

    def _redirect_converted(self, leads: list[Update]) -> None:
        """Leads Salesforce says are converted: update their contacts instead (R15), or say why not."""
        contact_of: dict[str, str | None] = {}
        try:
            if self.stopped is not None:
                raise self.stopped
            for soql in ids_query("Lead", [u.sf_id for u in leads], ["Id", "ConvertedContactId"]):
                for page in self.salesforce.query_pages(soql):
                    for record in page:
                        contact_of[record["Id"].lower()] = record.get("ConvertedContactId")
            if "Contact" in self.plan.rows:
                self._describe("Contact")
        except BudgetExhausted as exc:
            self._stop(exc)
            self.outcomes.save(self.run_key, self._limited(leads))
            return
        redirected: list[Update] = []
        outcomes: list[Outcome] = []
        for lead in leads:
            built = redirect_to_contact(self.customers[lead.customer_id], lead.sf_id, contact_of.get(lead.sf_id.lower()),
                                        self.plan, self.types)
            (outcomes if isinstance(built, Outcome) else redirected).append(built)
        self.outcomes.save(self.run_key, outcomes)
        if redirected:
            self.log.info("%s converted leads are sent to their contacts", len(redirected))
            left = self._send("Contact", redirected)
            # a contact never answers CANNOT_UPDATE_CONVERTED_LEAD; keep the promise that every record ends somewhere
            self.outcomes.save(self.run_key, [u.failed("UNEXPECTED", "converted again", sent_via="composite") for u in left])


# ------------------------------------------------------------------------------------------- operators


class SalesforceSynchronizeOperator(DeployteqSalesforceOperator):
    """Update Leads or Contacts in Salesforce from Deployteq customers and route each to an exit (R13-R15).

    Give the customers in exactly one way:

    :param selection_sql: SQL yielding a ``customer_id`` column, run in the Deployteq schema
        (e.g. ``SELECT customer_id FROM customer WHERE newsletter``).  Templated.
    :param customer_ids: customer ids, e.g. an upstream task's XCom (``XComArg``).  Templated.
    :param source_table: a table (optionally ``schema.table``) with a ``customer_id`` column that a
        previous step filled.  Templated.

    :param sobject: ``Lead``, ``Contact`` or ``auto`` (contact id if the customer has one, else lead id).
        A Lead customer that also has a contact id was converted and is sent to its contact; a lead
        Salesforce reports as converted is sent to its ``ConvertedContactId``.
    :param fields: mapped fields to send (Salesforce or Deployteq names of the object's mapping rows);
        default every mapped field.  Values are translated back with the inverse translations; a value
        whose translation is not invertible sends that record to ``on_error`` with the reason.
    :param object_config: the configured objects (default: Variable ``deployteq_salesforce_objects``).
    :param bulk_threshold: above this many updates per object one Bulk API 2.0 ingest job is used
        instead of composite requests of 200.
    :param run_key: key of the stored outcomes (default ``dag_id/task_id/run_id[/map_index]``); running
        the same key again continues that run.

    Returns (XCom) ``{"run_key", "sobject", "continue", "on_success", "on_error", "on_limit", "api_requests"}``.
    """

    template_fields: Sequence[str] = (
        "sobject", "fields", "selection_sql", "customer_ids", "source_table", "run_key",
        "salesforce_conn_id", "deployteq_conn_id",
    )
    template_fields_renderers = {"selection_sql": "sql"}
    ui_color = "#fdeee4"
    asset_aliases = (SALESFORCE_OBJECTS,)

    def __init__(
        self,
        *,
        sobject: str,
        fields: Sequence[str] | None = None,
        selection_sql: str | None = None,
        customer_ids: Any = None,
        source_table: str | None = None,
        object_config: dict | str | None = None,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        run_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = [name for name, value in (("selection_sql", selection_sql), ("customer_ids", customer_ids),
                                          ("source_table", source_table)) if value is not None]
        if len(given) != 1:
            raise ValueError(
                "give the customers in exactly one way: selection_sql, customer_ids or source_table"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if "{{" not in str(sobject) and sobject not in TARGETS:
            raise ValueError(f"sobject must be one of {', '.join(TARGETS)}, got {sobject!r}")
        if isinstance(fields, str):
            raise ValueError("fields must be a list of field names, not one string")
        if source_table is not None and "{{" not in source_table and not _TABLE_NAME.match(source_table):
            raise ValueError(f"source_table {source_table!r} must be a table name like 'campaign_selection' or 'schema.table'")
        if not isinstance(bulk_threshold, int) or bulk_threshold < 1:
            raise ValueError("bulk_threshold must be a whole number >= 1")
        self.sobject = sobject
        self.fields = fields
        self.selection_sql = selection_sql
        self.customer_ids = customer_ids
        self.source_table = source_table
        self.object_config = object_config
        self.bulk_threshold = bulk_threshold
        self.run_key = run_key

    @property
    def flow(self) -> str:
        return f"synchronize:{self.sobject}"

    def lineage_of(self, work: SynchronizeRun):
        """OpenLineage: the chosen customer columns -> Lead/Contact fields (inverse translations)."""
        from deployteq_salesforce.core import lineage

        return lineage.synchronize(work.plan.rows, work.objects, inverse_translations=inverse_translations,
                                   field_types=work.types, source_table=self.source_table)

    def _objects(self) -> dict[str, ConfiguredObject]:
        raw = self.object_config if self.object_config is not None else require_variable(OBJECTS_VARIABLE)
        return {o.sobject: o for o in load_objects_config(raw).enabled_objects()}

    def _run_key(self, context: Any) -> str:
        if self.run_key:
            return str(self.run_key)
        ti = (context or {}).get("ti")
        dag_run = (context or {}).get("dag_run")
        if ti is None or dag_run is None:
            return f"adhoc/{self.task_id}/{uuid.uuid4().hex}"
        key = f"{ti.dag_id}/{ti.task_id}/{dag_run.run_id}"
        map_index = getattr(ti, "map_index", -1)
        return key if map_index in (-1, None) else f"{key}/{map_index}"

    def _selected_ids(self) -> list[int] | None:
        ids = self.customer_ids
        if ids is None:
            return None
        if isinstance(ids, str):
            try:
                ids = json.loads(ids)
            except ValueError:
                raise ValueError(f"customer_ids must be a list of customer ids, got the text {ids!r}") from None
        if isinstance(ids, (int, str)):
            ids = [ids]
        try:
            return [int(i) for i in ids]
        except (TypeError, ValueError):
            raise ValueError(f"customer_ids must be whole numbers (customer table ids), got {ids!r}") from None

    def execute(self, context: Any) -> dict:
        objects = self._objects()
        plan = plan_fields(self.sobject, objects, list(self.fields) if self.fields is not None else None)
        store = DeployteqHook(deployteq_conn_id=self.deployteq_conn_id)
        store.migrate()
        salesforce = BudgetedSalesforceHook(
            salesforce_conn_id=self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id, flow=self.flow
        )
        outcomes = SynchronizeStore(store, phases=salesforce.phases)
        self._remember_for_lineage(store=store, salesforce=salesforce, work=None, written=None, outcome=None, counts=None,
                                   message=None)
        run_key = self._run_key(context)
        dag_run = (context or {}).get("dag_run")
        # the run and its customers in one transaction (timed as bookkeeping: not "other" in the run's phases)
        with salesforce.phases.phase(BOOKKEEPING), store.connect() as conn:
            new = outcomes.open_run(
                run_key, sobject=self.sobject, fields=list(plan.columns), dag_id=getattr(dag_run, "dag_id", None),
                task_id=self.task_id, run_id=getattr(dag_run, "run_id", None),
                selection=self.selection_sql or (f"table {self.source_table}" if self.source_table else "customer_ids"),
                conn=conn,
            )
            if new:
                selected = outcomes.select_customers(
                    run_key, selection_sql=self.selection_sql, customer_ids=self._selected_ids(),
                    source_table=self.source_table, conn=conn, new_run=True,
                )
        if new:
            self.log.info("Run %s: %s customers selected to synchronize to %s", run_key, selected, self.sobject)
        else:
            self.log.info("Run %s continues: only pending and on_limit records are sent (nothing is sent twice)", run_key)
        run_log_id = store.start_run(self.flow, dag_id=getattr(dag_run, "dag_id", None), run_id=getattr(dag_run, "run_id", None))
        work = SynchronizeRun(run_key=run_key, target=self.sobject, objects=objects, plan=plan, salesforce=salesforce,
                              outcomes=outcomes, bulk_threshold=self.bulk_threshold, log=self.log)
        self._remember_for_lineage(work=work)
        try:
            with running_flow(store):
                work.run()
        except Exception as exc:
            counts = outcomes.counts(run_key)
            store.finish_run(run_log_id, outcome="failed", counts=_log_counts(counts, salesforce.phases),
                             message=f"{type(exc).__name__}: {exc}", api_requests=salesforce.requests_sent)
            raise
        finally:
            salesforce.close()
        outcomes.finish(run_key)
        counts = outcomes.counts(run_key)
        outcome = "limited" if counts[ON_LIMIT] else "partial" if counts[ON_ERROR] else "success"
        message = str(work.stopped) if work.stopped is not None else None
        store.finish_run(run_log_id, outcome=outcome, counts=_log_counts(counts, salesforce.phases), message=message,
                         api_requests=salesforce.requests_sent)
        self.last_written = [Written(SALESFORCE, sobject, {"updated": number})
                             for sobject, number in outcomes.succeeded_by_object(run_key).items()]
        self._remember_for_lineage(written=self.last_written, outcome=outcome, message=message,
                                   counts={"errors": counts[ON_ERROR], "on_limit": counts[ON_LIMIT]})
        self.announce_changes(context, self.last_written, store=store, salesforce=salesforce,
                              extra={"flow": self.flow, "outcome": outcome, "run_log_id": run_log_id, "run_key": run_key})
        summary = {"run_key": run_key, "sobject": self.sobject, **counts, "api_requests": salesforce.requests_sent}
        self.log.info("Synchronize %s: %s", self.sobject,
                      ", ".join(f"{name} {counts[name]}" for name in EXITS) + f", {salesforce.requests_sent} API requests")
        return summary


def _log_counts(counts: Mapping[str, int], phases: PhaseTimer) -> dict[str, Any]:
    """The run log's columns: selected -> fetched, on_success -> updated, on_error -> errors (+ on_limit and the
    seconds per phase in details)."""
    return {"fetched": counts[CONTINUE], "updated": counts[ON_SUCCESS], "errors": counts[ON_ERROR],
            "on_limit": counts[ON_LIMIT], "phase_seconds": phases.as_dict()}


def _as_task_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set)):
        return [t for v in value for t in _as_task_ids(v)]
    operator = getattr(value, "operator", value)  # XComArg of a TaskFlow task -> its operator
    task_id = getattr(operator, "task_id", None)
    if not task_id:
        raise TypeError(f"expected a task, a TaskFlow call or a task id, got {value!r}")
    return [task_id]


class SynchronizeExitBranchOperator(BaseBranchOperator):
    """Follow the exits of a :class:`SalesforceSynchronizeOperator` (R14).

    ``continue`` is followed always; ``on_success`` / ``on_error`` / ``on_limit`` when they hold
    records, so several exits can run in one DAG run.  Exits without tasks are simply not followed.

    :param synchronize_task_id: the synchronize task whose XCom summary decides.
    :param exits: exit name -> task id(s) directly downstream of this branch.
    """

    template_fields: Sequence[str] = ("synchronize_task_id",)
    ui_color = "#f6e3b4"

    def __init__(self, *, synchronize_task_id: str, exits: Mapping[str, str | Sequence[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = sorted(set(exits) - set(EXITS))
        if unknown:
            raise ValueError(f"unknown exit(s) {unknown}; the exits are {', '.join(EXITS)}")
        self.synchronize_task_id = synchronize_task_id
        self.exits = {name: _as_task_ids(tasks) for name, tasks in exits.items() if tasks}

    def exit_of(self, task_id: str) -> str | None:
        """The exit a downstream task is on (None when it is on none)."""
        return next((name for name, ids in self.exits.items() if task_id in ids), None)

    def choose_branch(self, context: Any) -> list[str]:
        summary = context["ti"].xcom_pull(task_ids=self.synchronize_task_id)
        if not isinstance(summary, Mapping) or not all(name in summary for name in EXITS):
            raise ValueError(
                f"task {self.synchronize_task_id!r} returned {summary!r}, not the summary of a SalesforceSynchronizeOperator"
            )
        chosen = list(self.exits.get(CONTINUE, []))
        for name in RECORD_EXITS:
            if summary[name]:
                chosen += self.exits.get(name, [])
        self.log.info("Exits: %s", ", ".join(f"{name} {summary[name]}" for name in EXITS))
        return list(dict.fromkeys(chosen))


def synchronize_exits(
    synchronize: Any,
    *,
    on_success: Any = None,
    on_error: Any = None,
    on_limit: Any = None,
    continue_: Any = None,
    task_id: str = "synchronize_exits",
    **kwargs: Any,
) -> SynchronizeExitBranchOperator:
    """Wire ``synchronize >> branch >> exit tasks`` in one call; works with operators and TaskFlow calls.

    Example (TaskFlow)::

        sync = SalesforceSynchronizeOperator(task_id="synchronize", sobject="Lead", selection_sql=...)
        synchronize_exits(sync, on_success=mark_synced(), on_error=follow_up(), on_limit=requeue(), continue_=next_step())

    Inside each exit task, :func:`synchronize_exit_ids` returns the customer ids of that exit.
    """
    operator = getattr(synchronize, "operator", synchronize)
    exits = {CONTINUE: continue_, ON_SUCCESS: on_success, ON_ERROR: on_error, ON_LIMIT: on_limit}
    branch = SynchronizeExitBranchOperator(
        task_id=task_id, synchronize_task_id=operator.task_id, exits={k: v for k, v in exits.items() if v is not None},
        **kwargs,
    )
    operator >> branch
    for tasks in exits.values():
        for task in ([] if tasks is None else tasks if isinstance(tasks, (list, tuple)) else [tasks]):
            branch >> task
    return branch


def synchronize_exit_ids(
    context: Any = None,
    *,
    exit: str | None = None,
    synchronize_task_id: str | None = None,
    deployteq_conn_id: str = "deployteq_default",
) -> list[int]:
    """Customer ids of one exit of a synchronize run, for the task behind that exit.

    Without arguments (inside a task directly behind a :class:`SynchronizeExitBranchOperator`) the
    exit and the synchronize task are found from the DAG: the branch upstream of the current task
    knows which exit this task is on.  Works in classic operators (pass ``context``) and TaskFlow
    tasks (the current context is used).
    """
    run_key, exit = _exit_of_current_task(context, exit, synchronize_task_id)
    return SynchronizeStore(DeployteqHook(deployteq_conn_id=deployteq_conn_id)).customer_ids(run_key, exit)


def synchronize_exit_outcomes(
    context: Any = None,
    *,
    exit: str | None = None,
    synchronize_task_id: str | None = None,
    deployteq_conn_id: str = "deployteq_default",
) -> list[dict[str, Any]]:
    """Like :func:`synchronize_exit_ids`, with the stored outcome per customer (exit, sobject, sf_id,
    reason, status_code, message, ...); ``continue`` gives every record of the run."""
    run_key, exit = _exit_of_current_task(context, exit, synchronize_task_id)
    return SynchronizeStore(DeployteqHook(deployteq_conn_id=deployteq_conn_id)).outcomes(
        run_key, None if exit == CONTINUE else exit
    )


def _exit_of_current_task(context: Any, exit: str | None, synchronize_task_id: str | None) -> tuple[str, str]:
    """(run_key, exit) for the task running now."""
    if context is None:
        from airflow.sdk import get_current_context

        context = get_current_context()
    task = context["task"]
    if exit is None or synchronize_task_id is None:
        branch = next((t for t in task.upstream_list if isinstance(t, SynchronizeExitBranchOperator)), None)
        if branch is None:
            raise ValueError(
                f"task {task.task_id!r} is not directly behind a SynchronizeExitBranchOperator; "
                "pass exit= and synchronize_task_id="
            )
        exit = exit or branch.exit_of(task.task_id)
        synchronize_task_id = synchronize_task_id or branch.synchronize_task_id
        if exit is None:
            raise ValueError(f"task {task.task_id!r} is on no exit of branch {branch.task_id!r}; pass exit=")
    if exit not in EXITS:
        raise ValueError(f"exit must be one of {', '.join(EXITS)}, got {exit!r}")
    summary = context["ti"].xcom_pull(task_ids=synchronize_task_id)
    if not isinstance(summary, Mapping) or "run_key" not in summary:
        raise ValueError(f"task {synchronize_task_id!r} left no synchronize summary in XCom (got {summary!r})")
    return summary["run_key"], exit

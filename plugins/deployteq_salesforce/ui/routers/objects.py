"""Configured objects (Lead, Contact): the mapping per object, its last sync and next run, and the
mapping editor (the manual's pencil), which validates with the DAGs' own model before it saves, and
previews an edited mapping on a sample of records without saving (``flows/customers/preview.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse

from deployteq_salesforce.flows.customers.config import VARIABLE_NAME, ConfigProblem, validate_against_salesforce
from deployteq_salesforce.flows.customers.preview import (
    PREVIEW_REQUESTS, SAMPLE_DEFAULT, SAMPLE_MAX, InvalidCandidate, check_sample_size, display_value, duration_text,
    parse_candidate,
)
from deployteq_salesforce.ui import airflow_meta, editor, view_models
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, can_edit_variable, form_fields, redirect, render, require, requires_dag

router = APIRouter()

SOBJECTS = ("Lead", "Contact")
DEPLOYTEQ_TYPES = ("text", "email", "integer", "decimal", "boolean", "date", "datetime", "optin")
EMPTY_ROWS = 3

Services = Annotated[UiServices, Depends(ui_services)]


@router.get("/objects", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def objects_page(request: Request, user: CurrentUser, ui: Services, saved: str | None = None) -> HTMLResponse:
    config, _, config_problems = ui.objects_config()
    store = ui.store()
    columns = store.customer_columns()
    latest = store.latest_runs()
    schedules = airflow_meta.dag_schedules(view_models.object_dag_id(obj.sobject) for obj in (config.objects if config else []))
    objects = []
    for obj in config.objects if config else []:
        found = ui.describe(obj.sobject)
        problems = validate_against_salesforce(obj, found.as_dict(), columns or {}) if found.found else None
        objects.append(
            {
                "obj": obj,
                "rows": view_models.mapping_rows(obj, problems or []),
                "object_problems": view_models.object_level_problems(problems or []),
                "validity": view_models.validity(problems, found.problem),
                "flow": view_models.object_flow(obj.sobject),
                "last_run": latest.get(view_models.object_flow(obj.sobject)),
                "schedule": schedules.get(view_models.object_dag_id(obj.sobject)),
            }
        )
    return render(
        request, "objects.html", user, active="objects", objects=objects, config_problems=config_problems,
        saved=saved, sobjects=SOBJECTS, variable=VARIABLE_NAME, store_problem=store.problem,
    )


def _editor_context(ui: UiServices, sobject: str, document: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any]:
    current = next((o for o in document.get("objects", []) if isinstance(o, dict) and o.get("sobject") == sobject), None)
    found = ui.describe(sobject)
    columns = ui.store().customer_columns()
    if form is not None:  # show what the user submitted again, with the problems
        rows = [{**row, "unique_key": form.get("unique_key") == row["index"]} for row in editor.form_rows(form)]
        settings = {
            "enabled": bool(form.get("enabled")), "unique_field": form.get("unique_field", "id"),
            "sync_flag_field": form.get("sync_flag_field", ""), "schedule": form.get("schedule", ""),
        }
    else:
        rows = [
            {
                "salesforce_field": m.get("salesforce_field", ""), "deployteq_type": m.get("deployteq_type", "text"),
                "deployteq_field": m.get("deployteq_field", ""), "unique_key": bool(m.get("unique_key")),
                "translations": editor.format_translations(m.get("translations") or {}),
                "translate_default": m.get("translate_default", "keep"),
            }
            for m in (current or {}).get("mappings", [])
        ]
        settings = {
            "enabled": (current or {}).get("enabled", True), "unique_field": (current or {}).get("unique_field", "id"),
            "sync_flag_field": (current or {}).get("sync_flag_field") or "",
            "schedule": (current or {}).get("schedule", "@hourly") if current else "@hourly",
        }
    rows += [
        {"salesforce_field": "", "deployteq_type": "text", "deployteq_field": "", "unique_key": False,
         "translations": "", "translate_default": "keep"}
        for _ in range(EMPTY_ROWS)
    ]
    fields = view_models.field_choices(found.fields) if found.found else []
    return {
        "sobject": sobject, "rows": rows, "settings": settings, "sf_fields": fields,
        "boolean_fields": [f for f in fields if f["type"] == "boolean"],
        "deployteq_fields": sorted(columns or {}), "describe_problem": found.problem, "types": DEPLOYTEQ_TYPES,
        "is_new": current is None, "preview_requests": PREVIEW_REQUESTS, "sample_max": SAMPLE_MAX,
        "sample": (form or {}).get("preview_sample") or SAMPLE_DEFAULT,
    }


def _configurable(sobject: str) -> None:
    if sobject not in SOBJECTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{sobject!r} is not a configurable object ({', '.join(SOBJECTS)})")


@router.get("/objects/{sobject}/edit", response_class=HTMLResponse)
def edit_object_page(request: Request, sobject: str, user: CurrentUser, ui: Services) -> HTMLResponse:
    require(can_edit_variable(user, VARIABLE_NAME), f"editing needs edit rights on Variable {VARIABLE_NAME!r}")
    _configurable(sobject)
    _, document, _ = ui.objects_config()
    return render(
        request, "edit_object.html", user, active="objects", problems=[], row_problems={}, warnings=[],
        **_editor_context(ui, sobject, document, None),
    )


@router.post("/objects/{sobject}", response_class=HTMLResponse)
async def save_object(request: Request, sobject: str, user: CurrentUser, ui: Services):
    require(can_edit_variable(user, VARIABLE_NAME), f"editing needs edit rights on Variable {VARIABLE_NAME!r}")
    _configurable(sobject)
    form = await form_fields(request, user)
    _, document, _ = ui.objects_config()
    found = ui.describe(sobject)
    result = editor.edit_object(
        document, sobject, form, describe=found.as_dict() if found.found else None,
        customer_columns=ui.store().customer_columns() if found.found else None,
    )
    if not result.accepted:
        return render(
            request, "edit_object.html", user, active="objects", status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            problems=result.problems, row_problems=view_models.problems_by_row(result.problems), warnings=result.warnings,
            **_editor_context(ui, sobject, document, form),
        )
    airflow_meta.set_variable(VARIABLE_NAME, result.variable_text)
    return redirect(request, "/objects", saved=sobject)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.post("/objects/{sobject}/preview", response_class=HTMLResponse)
async def preview_object(request: Request, sobject: str, user: CurrentUser, ui: Services):
    """What the submitted mapping would do to a sample of records, without saving anything (3 Salesforce
    requests: describe, sample, count).  The editor comes back below the result, with what was submitted,
    so the mapping can be changed and previewed again or saved.  JSON with ``Accept: application/json``."""
    require(can_edit_variable(user, VARIABLE_NAME), f"previewing needs edit rights on Variable {VARIABLE_NAME!r}")
    _configurable(sobject)
    form = await form_fields(request, user)
    _, document, _ = ui.objects_config()
    candidate, problems = editor.apply_object_edit(document, sobject, form)
    sample = _sample_size(form.get("preview_sample"), sobject, problems)
    result = None
    if not problems:
        try:
            result = ui.preview(parse_candidate(candidate, sobject), sample)
        except InvalidCandidate as exc:
            problems = exc.problems
        except Exception as exc:  # noqa: BLE001 - Salesforce or the store not reachable, no budget: say why
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"The preview could not run (nothing was saved): {type(exc).__name__}: {exc}"
            ) from exc
    if problems:
        if _wants_json(request):
            return JSONResponse(
                {"valid": False, "saved": False, "problems": [str(p) for p in problems]},
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
        return render(
            request, "edit_object.html", user, active="objects", status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            problems=problems, row_problems=view_models.problems_by_row(problems), warnings=[], previewing=True,
            **_editor_context(ui, sobject, document, form),
        )
    if _wants_json(request):
        return JSONResponse({"valid": True, "saved": False, **result.as_dict()})
    return render(
        request, "edit_object.html", user, active="objects", problems=[], row_problems={}, warnings=result.warnings,
        preview=_preview_view(result), **_editor_context(ui, sobject, document, form),
    )


def _sample_size(text: str | None, sobject: str, problems: list[ConfigProblem]) -> int:
    try:
        return check_sample_size(int(str(text or SAMPLE_DEFAULT).strip()))
    except ValueError:
        problems.append(ConfigProblem(sobject, None, "sample", f"the sample size must be a whole number from 1 to {SAMPLE_MAX}"))
        return SAMPLE_DEFAULT


def _preview_view(result: Any) -> dict[str, Any]:
    """The preview as the page shows it: one row per record with a change (before/after per changed column)."""
    new = {c.name for c in result.new_columns}

    def shown(value: Any) -> str:
        value = display_value(value)
        return "empty" if value is None else str(value)

    columns = result.changed_columns
    changed = []
    for record in result.records:
        if not record.changed or record.outcome == "rejected":
            continue
        cells = []
        for column in columns:
            after = (record.after or {}).get(column)
            if column not in record.changed:
                cells.append({"changed": False, "after": shown(after) if record.after else ""})
                continue
            # nothing to strike out in a column that does not exist yet, or for a customer that is new
            before = None if column in new or record.before is None else shown(record.before.get(column))
            cells.append({"changed": True, "before": before, "after": shown(after)})
        changed.append({"record": record, "cells": cells})
    return {
        "result": result, "columns": columns, "changed": changed, "new_columns": new,
        "duration": duration_text(result.estimate.seconds) if result.estimate else None,
    }

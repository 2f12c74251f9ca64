"""Object links: the list (with last sync and next run), the form per link (the manual's gear) and the
JSON editor of the whole Variable.  Every change is validated with the DAGs' model and against
Salesforce (the link's object must exist and hold its webhook's fields) before anything is saved."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from deployteq_salesforce.flows.object_links.config import SYNC_COLUMN, VARIABLE_NAME, ObjectLink, Webhook
from deployteq_salesforce.ui import airflow_meta, editor, view_models
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, can_edit_variable, form_fields, redirect, render, require, requires_dag

log = logging.getLogger(__name__)
router = APIRouter()

Services = Annotated[UiServices, Depends(ui_services)]


def link_check(ui: UiServices) -> editor.LinkCheck:
    """Checks a link against its object's describe, as the link's DAG does before it fetches anything."""
    from deployteq_salesforce.flows.object_links.operator import check_link_against_describe

    def check(link: ObjectLink, webhook: Webhook) -> tuple[list[editor.LinkProblem], list[str]]:
        found = ui.describe(link.sobject)
        if found.missing:
            return [editor.missing_object_problem(link)], []
        if not found.found:
            return [], [f"not checked against Salesforce: {found.problem}"]
        return editor.describe_problems(webhook, check_link_against_describe(link, webhook, found.as_dict())), []

    return check


def _require_editor(user: Any) -> None:
    require(can_edit_variable(user, VARIABLE_NAME), f"editing needs edit rights on Variable {VARIABLE_NAME!r}")


@router.get("/links", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def links_page(
    request: Request, user: CurrentUser, ui: Services, saved: str | None = None, deleted: str | None = None
) -> HTMLResponse:
    return _links_page(request, user, ui, saved=saved, deleted=deleted)


def _links_page(
    request: Request, user: Any, ui: UiServices, *, raw: str | None = None, problems: Sequence[str] = (),
    warnings: Sequence[str] = (), saved: str | None = None, deleted: str | None = None, status_code: int = 200,
) -> HTMLResponse:
    view = ui.links_view()
    if raw is not None:
        view["raw"] = raw
    store = ui.store()
    latest = store.latest_runs()
    names = [link["name"] for link in view["links"] if isinstance(link.get("name"), str)]
    schedules = airflow_meta.dag_schedules(view_models.link_dag_id(name) for name in names)
    rows = [
        {
            "link": link,
            "flow": view_models.link_flow(str(link.get("name"))),
            "last_run": latest.get(view_models.link_flow(str(link.get("name")))),
            "schedule": schedules.get(view_models.link_dag_id(str(link.get("name")))),
        }
        for link in view["links"]
    ]
    return render(
        request, "links.html", user, active="links", status_code=status_code, view=view, rows=rows,
        saved=saved, deleted=deleted, can_edit_links=can_edit_variable(user, VARIABLE_NAME),
        problems=list(problems), warnings=list(warnings), store_problem=store.problem, labels=editor.LINK_FIELD_LABELS,
    )


@router.post("/links", response_class=HTMLResponse)
async def save_links(request: Request, user: CurrentUser, ui: Services):
    _require_editor(user)
    form = await form_fields(request, user)
    text = form.get("links", "")
    parsed, problems, warnings = editor.check_links_text(text, link_check(ui))
    if problems:
        return _links_page(request, user, ui, raw=text, problems=problems, warnings=warnings,
                           status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    airflow_meta.set_variable(VARIABLE_NAME, json.dumps(parsed, indent=2, ensure_ascii=False))
    log.info("User %s saved the object links in Variable %s", user.get_name(), VARIABLE_NAME)
    return redirect(request, "/links", saved="all")


# -- one object link as a form (the manual's gear) -------------------------------------------------


def _document() -> dict[str, Any]:
    """The links Variable as a document the forms can edit; 409 when it is not one."""
    document = editor.links_document(airflow_meta.get_variable(VARIABLE_NAME))
    if document is None:  # a form cannot edit it safely: only the JSON editor can repair it
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Variable {VARIABLE_NAME!r} is not a valid object-links document; fix it in the JSON editor on the links page",
        )
    return document


def _existing_link(document: dict[str, Any], name: str) -> dict[str, Any]:
    link = editor.find_link(document, name)
    if link is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no object link named {name!r}")
    return link


def _link_form(
    request: Request, user: Any, document: dict[str, Any], original_name: str, values: dict[str, str],
    problems: Sequence[editor.LinkProblem] = (), warnings: Sequence[str] = (),
) -> HTMLResponse:
    return render(
        request, "edit_link.html", user, active="links",
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if problems else 200,
        original_name=original_name, values=values, problems=list(problems), warnings=list(warnings),
        problem_fields={p.field for p in problems}, webhooks=editor.webhook_choices(document),
        labels=editor.LINK_FIELD_LABELS, sync_column=SYNC_COLUMN,
    )


@router.get("/links/new", response_class=HTMLResponse)
def new_link_page(request: Request, user: CurrentUser) -> HTMLResponse:
    _require_editor(user)
    return _link_form(request, user, _document(), "", editor.link_form_values(None))


@router.get("/links/edit", response_class=HTMLResponse)
def edit_link_page(request: Request, name: str, user: CurrentUser) -> HTMLResponse:
    _require_editor(user)
    document = _document()
    return _link_form(request, user, document, name, editor.link_form_values(_existing_link(document, name)))


@router.post("/links/edit", response_class=HTMLResponse)
async def save_link(request: Request, user: CurrentUser, ui: Services):
    _require_editor(user)
    form = await form_fields(request, user)
    document = _document()
    original_name = form.get("original_name", "")
    result = editor.edit_link(document, original_name, form, link_check(ui))
    if not result.accepted:
        return _link_form(request, user, document, original_name, editor.submitted_link_values(form), result.problems, result.warnings)
    airflow_meta.set_variable(VARIABLE_NAME, result.variable_text)
    log.info("User %s saved object link %r in Variable %s", user.get_name(), form.get("name"), VARIABLE_NAME)
    return redirect(request, "/links", saved=form.get("name"))


@router.get("/links/delete", response_class=HTMLResponse)
def confirm_delete_link(request: Request, name: str, user: CurrentUser) -> HTMLResponse:
    """Deleting is asked once more, on its own page (works without JavaScript)."""
    _require_editor(user)
    link = _existing_link(_document(), name)
    return render(request, "delete_link.html", user, active="links", link=link)


@router.post("/links/delete", response_class=HTMLResponse)
async def delete_link(request: Request, user: CurrentUser):
    _require_editor(user)
    form = await form_fields(request, user)
    document = _document()
    name = form.get("name", "")
    link = _existing_link(document, name)
    result = editor.delete_link(document, name)
    if not result.accepted:
        return _link_form(request, user, document, name, editor.link_form_values(link), result.problems)
    airflow_meta.set_variable(VARIABLE_NAME, result.variable_text)
    log.info("User %s deleted object link %r from Variable %s", user.get_name(), name, VARIABLE_NAME)
    return redirect(request, "/links", deleted=name)

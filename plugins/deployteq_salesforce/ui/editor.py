"""The editors' form logic: HTML form <-> Variable document, and the check before saving.

* the mapping editor (the manual's pencil): form <-> configured object; rows are numbered from 1 as
  in the messages of ``config.py``;
* the object-link form (the manual's gear): form <-> one link of the object-links Variable.

Pure logic, no Airflow: the web layer hands in the form fields, the current Variable (and for a
mapping the describe and the customer table's columns), and gets back either the new Variable
text or the problems.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from deployteq_salesforce.flows.customers.config import (
    ConfigProblem,
    InvalidConfiguration,
    load_objects_config,
    validate_against_salesforce,
)
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.object_links.config import ObjectLink, Webhook, load_object_links

TRANSLATION_ARROW = "=>"
ROW_FIELDS = ("salesforce_field", "deployteq_type", "deployteq_field", "translations", "translate_default")
MAX_ROWS = 500


def format_translations(translations: Mapping[str, str | None]) -> str:
    """Textarea text: one ``Salesforce value => Deployteq value`` per line; nothing after ``=>`` means empty (null)."""
    return "\n".join(f"{source} {TRANSLATION_ARROW} {'' if target is None else target}".rstrip() for source, target in translations.items())


def parse_translations(text: str, *, label: str, row: int, field: str | None) -> tuple[dict[str, str | None], list[ConfigProblem]]:
    translations: dict[str, str | None] = {}
    problems: list[ConfigProblem] = []
    for line_number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        if TRANSLATION_ARROW not in line:
            problems.append(
                ConfigProblem(
                    label, row, field,
                    f"translation line {line_number} {line.strip()!r} has no '{TRANSLATION_ARROW}'; "
                    f"write 'Salesforce value {TRANSLATION_ARROW} Deployteq value'",
                )
            )
            continue
        source, _, target = line.partition(TRANSLATION_ARROW)
        source, target = source.strip(), target.strip()
        if source in translations:
            problems.append(ConfigProblem(label, row, field, f"translation of {source!r} is given twice (line {line_number})"))
        translations[source] = target if target else None
    return translations, problems


@dataclass(frozen=True)
class EditResult:
    """What a submitted edit would save; ``problems`` non-empty (errors) means: refuse, save nothing."""

    config: dict[str, Any] | None
    variable_text: str | None
    problems: list[ConfigProblem]
    warnings: list[ConfigProblem]

    @property
    def accepted(self) -> bool:
        return not self.problems and self.variable_text is not None


def form_rows(form: Mapping[str, str]) -> list[dict[str, str]]:
    """The submitted rows in order (``row-N-field`` names), blank rows left out."""
    try:
        count = min(int(form.get("row_count", "0") or 0), MAX_ROWS)
    except ValueError:
        count = 0
    rows = []
    for index in range(count):
        values = {name: (form.get(f"row-{index}-{name}") or "").strip() for name in ROW_FIELDS}
        values["index"] = str(index)
        values["delete"] = "yes" if form.get(f"row-{index}-delete") else ""
        if values["delete"] or not (values["salesforce_field"] or values["deployteq_field"]):
            continue
        rows.append(values)
    return rows


def apply_object_edit(current: Mapping[str, Any], sobject: str, form: Mapping[str, str]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """The whole Variable with ``sobject`` replaced by the submitted form (other objects untouched).

    Settings the form does not show (bulk threshold, lookback, ...) keep their current values.
    Returns the candidate and the problems found while reading the form itself.
    """
    config = copy.deepcopy(dict(current)) if current else {}
    objects = config.setdefault("objects", [])
    existing = next((o for o in objects if isinstance(o, dict) and o.get("sobject") == sobject), None)
    obj = copy.deepcopy(existing) if existing is not None else {"sobject": sobject}
    problems: list[ConfigProblem] = []

    obj["enabled"] = bool(form.get("enabled"))
    obj["unique_field"] = (form.get("unique_field") or obj.get("unique_field") or "id").strip()
    flag = (form.get("sync_flag_field") or "").strip()
    obj["sync_flag_field"] = flag or None
    schedule = (form.get("schedule") or "").strip()
    obj["schedule"] = schedule or None

    key_index = (form.get("unique_key") or "").strip()
    mappings = []
    for position, row in enumerate(form_rows(form), start=1):
        translations, translation_problems = parse_translations(
            row["translations"], label=sobject, row=position, field=row["salesforce_field"] or None
        )
        problems += translation_problems
        mapping: dict[str, Any] = {
            "salesforce_field": row["salesforce_field"],
            "deployteq_type": row["deployteq_type"] or "text",
            "deployteq_field": row["deployteq_field"],
            "unique_key": key_index == row["index"],
        }
        if translations:
            mapping["translations"] = translations
        if row["translate_default"] and row["translate_default"] != "keep":
            mapping["translate_default"] = row["translate_default"]  # the model refuses unknown values
        mappings.append(mapping)
    obj["mappings"] = mappings

    if existing is not None:
        objects[objects.index(existing)] = obj
    else:
        objects.append(obj)
    return config, problems


def check_candidate(
    candidate: Mapping[str, Any],
    sobject: str,
    *,
    describe: Mapping[str, Any] | None,
    customer_columns: Mapping[str, str] | None,
    form_problems: list[ConfigProblem] = (),  # type: ignore[assignment]
) -> EditResult:
    """Validate with the same model the DAGs use; the Variable text only when there is no error.

    With a describe (and the customer table's columns) the edited object is also checked against
    Salesforce (``validate_against_salesforce``); its warnings do not stop the save.
    """
    problems = list(form_problems)
    try:
        parsed = load_objects_config(dict(candidate))
    except InvalidConfiguration as exc:
        return EditResult(None, None, problems + exc.problems, [])
    warnings: list[ConfigProblem] = []
    obj = parsed.get(sobject)
    if obj is not None and describe is not None:
        found = validate_against_salesforce(obj, dict(describe), dict(customer_columns or {}))
        problems += [p for p in found if p.is_error]
        warnings = [p for p in found if not p.is_error]
    if problems:
        return EditResult(None, None, problems, warnings)
    text = json.dumps(dict(candidate), indent=2, ensure_ascii=False)
    return EditResult(dict(candidate), text, [], warnings)


def edit_object(
    current: Mapping[str, Any],
    sobject: str,
    form: Mapping[str, str],
    *,
    describe: Mapping[str, Any] | None,
    customer_columns: Mapping[str, str] | None,
) -> EditResult:
    candidate, form_problems = apply_object_edit(current, sobject, form)
    return check_candidate(candidate, sobject, describe=describe, customer_columns=customer_columns, form_problems=form_problems)


def check_links_text(text: str, check_link: LinkCheck | None = None) -> tuple[Any, list[str], list[str]]:
    """Parse the object-links JSON and validate it with the DAGs' model, then (with ``check_link``) every
    link against Salesforce; (parsed or None, problems, warnings)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"], []
    try:
        config = load_object_links(data)
    except ConfigurationError as exc:  # its message names the link or webhook and the reason
        return None, _problem_lines(exc), []
    problems: list[str] = []
    warnings: list[str] = []
    for link in config.links if check_link is not None else ():
        found, unchecked = check_link(link, config.webhook_of(link))
        problems += [f"link {link.name!r}: {problem}" for problem in found]
        warnings += [f"link {link.name!r}: {warning}" for warning in unchecked]
    return (None if problems else data), problems, warnings


def _problem_lines(exc: Exception) -> list[str]:
    """The ``- ...`` lines of a loader's error without its heading line (a one-line error as it is)."""
    lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip()]
    return lines[1:] if len(lines) > 1 else lines


# ------------------------------------------------------------------ the object-link form (the gear)

# The manual's settings of a link, in the manual's order; everything else of a link is kept as it is.
LINK_FORM_FIELDS = ("name", "allow_inserts", "delete", "sobject", "webhook", "datamodel", "use_sync_column", "enabled", "schedule")
LINK_YES_NO_FIELDS = frozenset({"allow_inserts", "delete", "use_sync_column", "enabled"})
LINK_FIELD_LABELS = {
    "name": "Name",
    "allow_inserts": "Allow inserts",
    "delete": "Delete",
    "sobject": "Salesforce object",
    "webhook": "Webhook",
    "datamodel": "Datamodel table",
    "use_sync_column": "Use sync column",
    "enabled": "Enabled",
    "schedule": "Schedule",
}
# The model's cross-reference check joins its problems with "; " -- split only where the next one starts.
_NEXT_CROSS_REFERENCE = re.compile(r"; (?=(?:link|links|webhook|webhooks) )")
_LINK_SETTING_PROBLEM = re.compile(r"^link '(?P<name>[^']*)': (?P<message>(?P<field>\w+) .*)$")
_DUPLICATE_LINK_NAME = re.compile(r"^link name '(?P<name>[^']*)' is used more than once$")


@dataclass(frozen=True)
class LinkProblem:
    """Why a link edit is refused; ``field`` is the form field concerned, when there is one."""

    field: str | None
    message: str

    def __str__(self) -> str:
        if self.field is None:
            return self.message
        return f"{LINK_FIELD_LABELS.get(self.field, self.field)}: {self.message}"


# Checks a link against Salesforce (its object's describe): the problems, and why it could not be
# checked (e.g. Salesforce not reachable), as warnings that do not stop the save.
LinkCheck = Callable[[ObjectLink, Webhook], tuple[list[LinkProblem], list[str]]]


def describe_problems(webhook: Webhook, messages: list[str]) -> list[LinkProblem]:
    """The link's problems against its object's describe (``check_link_against_describe``), on the form
    field each is about: the webhook's fields and the sync column must exist on the Salesforce object."""
    problems = []
    for message in messages:
        if message.startswith("field "):
            problems.append(LinkProblem("sobject", f"{message} (webhook {webhook.name!r} needs it)"))
        else:
            problems.append(LinkProblem("use_sync_column", message))
    return problems


def missing_object_problem(link: ObjectLink) -> LinkProblem:
    return LinkProblem(
        "sobject", f"Salesforce has no object {link.sobject!r} (checked with describe); use the object's API name, e.g. Account"
    )


@dataclass(frozen=True)
class LinkEditResult:
    """The new Variable text, or (when ``problems`` is non-empty) nothing to save."""

    variable_text: str | None
    problems: list[LinkProblem]
    warnings: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.problems and self.variable_text is not None


def links_document(raw: str | None) -> dict[str, Any] | None:
    """The Variable as a document to edit, or None when it is not ``{"links": [...], ...}`` JSON."""
    if raw in (None, ""):
        return {"webhooks": [], "links": []}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("links", []), list):
        return None
    return document


def find_link(document: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    return next((link for link in document.get("links", []) if isinstance(link, dict) and link.get("name") == name), None)


def webhook_choices(document: Mapping[str, Any]) -> list[dict[str, str]]:
    """The webhooks a link can name: ``{"name", "datamodel"}`` each, as defined in the Variable."""
    webhooks = document.get("webhooks", [])
    return [
        {"name": webhook["name"], "datamodel": str(webhook.get("datamodel", ""))}
        for webhook in (webhooks if isinstance(webhooks, list) else [])
        if isinstance(webhook, dict) and isinstance(webhook.get("name"), str)
    ]


def link_form_values(link: Mapping[str, Any] | None) -> dict[str, str]:
    """The form's text of a stored link (None: a new one); a setting it leaves out shows the model's default."""
    values = {}
    for field in LINK_FORM_FIELDS:
        default = None if ObjectLink.model_fields[field].is_required() else ObjectLink.model_fields[field].default
        value = (link or {}).get(field, default)
        if isinstance(value, bool):
            values[field] = "yes" if value else "no"
        else:
            values[field] = "" if value is None else str(value)
    return values


def submitted_link_values(form: Mapping[str, str]) -> dict[str, str]:
    return {field: (form.get(field) or "").strip() for field in LINK_FORM_FIELDS}


def parse_link_form(form: Mapping[str, str]) -> tuple[dict[str, Any], list[LinkProblem]]:
    """The link settings of the submitted form, and the answers that are neither yes nor no.

    Text is passed on as typed (an empty name or webhook is refused by the model, with its reason);
    an empty schedule means: run manually only.
    """
    settings: dict[str, Any] = {}
    problems: list[LinkProblem] = []
    for field, text in submitted_link_values(form).items():
        if field in LINK_YES_NO_FIELDS:
            if text not in ("yes", "no"):
                problems.append(LinkProblem(field, f"choose yes or no, not {text!r}"))
                continue
            settings[field] = text == "yes"
        elif field == "schedule":
            settings[field] = text or None
        else:
            settings[field] = text
    return settings, problems


def merge_link(
    document: Mapping[str, Any], original_name: str, settings: Mapping[str, Any]
) -> tuple[dict[str, Any], int | None, list[LinkProblem]]:
    """The document with link ``original_name`` updated by ``settings`` (or a new link when the name is empty).

    Returns the candidate, the edited link's position (None when it is gone) and the problems.
    """
    candidate = copy.deepcopy(dict(document))
    links = candidate.setdefault("links", [])
    if not original_name:
        links.append(dict(settings))
        return candidate, len(links) - 1, []
    current = find_link(candidate, original_name)
    if current is None:  # removed by someone else since the form was opened
        return candidate, None, [LinkProblem("name", f"link {original_name!r} is no longer in the Variable; reload the links page")]
    position = links.index(current)
    links[position] = {**current, **settings}  # settings the form does not show stay as they are
    return candidate, position, []


def _link_field_problems(link: Mapping[str, Any]) -> list[LinkProblem]:
    """The edited link's own settings against the model: one "field: reason" per pydantic error."""
    try:
        ObjectLink.model_validate(dict(link))
    except ValidationError as exc:
        return [
            LinkProblem(str(error["loc"][0]) if error["loc"] else None, error["msg"].removeprefix("Value error, "))
            for error in exc.errors()
        ]
    return []


def _document_problems(exc: ConfigurationError, link_name: str | None) -> list[LinkProblem]:
    """``load_object_links``' problems; those about the edited link are put on the form field they name."""
    problems = []
    for line in _problem_lines(exc):
        for message in _NEXT_CROSS_REFERENCE.split(line):
            setting = _LINK_SETTING_PROBLEM.match(message)
            duplicate = _DUPLICATE_LINK_NAME.match(message)
            if setting and setting["name"] == link_name and setting["field"] in LINK_FORM_FIELDS:
                problems.append(LinkProblem(setting["field"], setting["message"]))
            elif duplicate and duplicate["name"] == link_name:
                problems.append(LinkProblem("name", f"another link is already called {link_name!r}"))
            else:
                problems.append(LinkProblem(None, message))
    return problems


def check_links_document(candidate: Mapping[str, Any], link_name: str | None = None) -> LinkEditResult:
    """Validate the WHOLE document with ``load_object_links`` (the DAGs' model); the Variable text only when valid."""
    try:
        load_object_links(dict(candidate))
    except ConfigurationError as exc:
        return LinkEditResult(None, _document_problems(exc, link_name))
    return LinkEditResult(json.dumps(dict(candidate), indent=2, ensure_ascii=False), [])


def edit_link(
    document: Mapping[str, Any], original_name: str, form: Mapping[str, str], check_link: LinkCheck | None = None
) -> LinkEditResult:
    """The submitted link form applied to the document: replace ``original_name`` (renaming allowed) or add a link.

    The whole document is validated with the DAGs' model, then (with ``check_link``) the edited link
    against Salesforce: its object must exist and hold the webhook's fields.
    """
    settings, problems = parse_link_form(form)
    candidate, position, merge_problems = merge_link(document, original_name, settings)
    problems += merge_problems
    if position is not None:
        problems += _link_field_problems(candidate["links"][position])
    if problems:  # the document check would repeat these, without the field
        return LinkEditResult(None, problems)
    result = check_links_document(candidate, settings["name"])
    if not result.accepted or check_link is None:
        return result
    config = load_object_links(candidate)
    link = config.link(settings["name"])
    found, warnings = check_link(link, config.webhook_of(link))
    return LinkEditResult(None, found, warnings) if found else LinkEditResult(result.variable_text, [], warnings)


def delete_link(document: Mapping[str, Any], name: str) -> LinkEditResult:
    """The document without link ``name``, validated like any other change."""
    candidate = copy.deepcopy(dict(document))
    candidate["links"] = [link for link in candidate.get("links", []) if not (isinstance(link, dict) and link.get("name") == name)]
    return check_links_document(candidate)

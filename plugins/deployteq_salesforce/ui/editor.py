"""The mapping editor (the manual's pencil): HTML form <-> configured object, and the check before saving.

Pure logic, no Airflow: the web layer hands in the form fields, the current Variable, the describe
and the customer table's columns, and gets back either the new Variable text or the problems.
Rows are numbered from 1 as in the messages of ``config.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployteq_salesforce.config import (
    ConfigProblem,
    InvalidConfiguration,
    load_objects_config,
    validate_against_salesforce,
)

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


def check_links_text(text: str, validate) -> tuple[Any, list[str]]:  # noqa: ANN001 - the links module's loader
    """Parse the object-links JSON and run ``validate`` (the issue-4 loader) on it; (parsed, problems)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]
    try:
        validate(data)
    except Exception as exc:  # noqa: BLE001 - the loader's own error carries the row and reason
        problems = getattr(exc, "problems", None)
        if problems:
            return None, [str(p) for p in problems]
        lines = [line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip()]
        return None, lines[1:] if len(lines) > 1 else lines
    return data, []

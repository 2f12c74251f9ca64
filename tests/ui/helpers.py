"""What the UI tests do like a browser: read a form as it would be submitted, find the form token."""

from __future__ import annotations

import html as html_text
import json
import re


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def submitted_form(html: str, form_id: str | None = None) -> dict[str, str]:
    """The fields of a form as the browser submits them unchanged (the first form, or the one with ``form_id``)."""
    if form_id is not None:
        html = re.search(rf'<form[^>]*id="{form_id}".*?</form>', html, re.S).group(0)
    form: dict[str, str] = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'\bname="([^"]+)"', tag)
        if name is None:
            continue
        kind = (re.search(r'\btype="([^"]+)"', tag) or [None, "text"])[1]
        value = html_text.unescape((re.search(r'\bvalue="([^"]*)"', tag) or [None, "on"])[1])
        if kind in ("checkbox", "radio") and not re.search(r"\bchecked\b", tag):
            continue
        form[name.group(1)] = value
    for name, body in re.findall(r'<textarea\b[^>]*\bname="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        form[name] = html_text.unescape(body)
    for name, options in re.findall(r'<select\b[^>]*\bname="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.findall(r"<option\b([^>]*)\bselected\b[^>]*>([^<]*)<", options) or re.findall(r"<option\b([^>]*)>([^<]*)<", options)[:1]
        if chosen:
            attributes, text = chosen[0]
            value = re.search(r'value="([^"]*)"', attributes)
            form[name] = html_text.unescape(value.group(1) if value else text)
    return form


def variable_value(key: str = "deployteq_salesforce_objects") -> str | None:
    from airflow.models import Variable

    return Variable.get(key, default_var=None)


def links_value() -> dict | None:
    value = variable_value("deployteq_salesforce_object_links")
    return json.loads(value) if value is not None else None


def retry_flags() -> dict[int, bool]:
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        return dict(conn.execute("SELECT sync_error_id, retry_requested FROM sync_error").fetchall())

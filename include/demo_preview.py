"""`make demo`'s preview step: a dry run of a mapping change on the demo's leads (nothing is written).

The change an ops person would try first: salutation "Mr." translated to "De heer" instead of "Dhr.".
The same preview is the "Preview" button of the Salesforce page's mapping editor and the CLI
``python -m deployteq_salesforce.preview`` (README, "Preview a mapping change").
"""

from __future__ import annotations

import copy
import json

from include.local_services import server_context

SOBJECT = "Lead"


def demo_candidate(objects_variable: str) -> dict:
    """The Lead entry of the Variable with "Mr." => "De heer"."""
    lead = copy.deepcopy(next(o for o in json.loads(objects_variable)["objects"] if o["sobject"] == SOBJECT))
    for row in lead["mappings"]:
        if "Mr." in (row.get("translations") or {}):
            row["translations"]["Mr."] = "De heer"
    return lead


def preview_demo_change() -> list[str]:
    """Run the preview; the summary lines of its text report (for the console and the report)."""
    from airflow.sdk import Variable

    from deployteq_salesforce.flows.customers.preview import format_text, parse_candidate, preview_on_connections

    with server_context():  # connections and Variables from the metadata DB
        candidate = parse_candidate(demo_candidate(Variable.get("deployteq_salesforce_objects")), SOBJECT)
        preview = preview_on_connections(candidate)
    summary = format_text(preview, max_records=0).splitlines()[:4]  # what, would, cost, next full run
    on_existing = {column for record in preview.records if record.outcome in ("update", "merge")
                   for column in record.changed}
    changed = ", ".join(c for c in preview.columns if c in on_existing) or "none"
    return ['Change tried: Lead salutation "Mr." => "De heer" (was "Dhr.")', *summary,
            f"Columns that would change on existing customers: {changed}"]

"""End-state checks of the soak against the truth held by the emulator and by the load generator.

Pure functions over plain data (records, rows, the request log), so each rule is easy to read and test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

HOUR = 3600.0
STUCK_STATES = ("running", "queued", "scheduled", "deferred", "up_for_retry", "up_for_reschedule", "restarting")


def max_requests_rolling_hour(times: Iterable[float], until: float | None = None) -> int:
    """The most requests in any 60-minute window (ending at a request) among ``times`` (seconds), up to ``until``."""
    times = sorted(t for t in times if until is None or t <= until)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - HOUR:
            start += 1
        best = max(best, end - start + 1)
    return best


def requests_while_blocked(log: list[dict]) -> int:
    """Requests that arrived while Salesforce blocked the token (the one that tripped the block does not count)."""
    return sum(1 for entry in log if entry["blocked"])


@dataclass
class CustomerCheck:
    lost: list[str] = field(default_factory=list)  # live record, no customer
    duplicated: list[str] = field(default_factory=list)  # one id or address in several customers
    stale: list[str] = field(default_factory=list)  # customer without the latest values
    not_marked_deleted: list[str] = field(default_factory=list)
    flags_not_reset: list[str] = field(default_factory=list)


def check_customers(objects: dict[str, Any], records: dict[str, list[dict]], customers: list[dict]) -> CustomerCheck:
    """``objects``: sobject -> ConfiguredObject; ``records``: sobject -> every record (deleted too);
    ``customers``: rows of the customer table."""
    from deployteq_salesforce.flows.customers.mapping import CustomerRow, build_customer_row

    result = CustomerCheck()
    by_id: dict[str, list[dict]] = defaultdict(list)
    for row in customers:
        for column in ("sf_lead_id", "sf_contact_id"):
            if row[column]:
                by_id[row[column]].append(row)
    emails = Counter(row["email_key"] for row in customers if row["email_key"] and not row["sf_deleted"])
    result.duplicated += [f"e-mail {key} in {n} customers" for key, n in emails.items() if n > 1]
    for sobject, column in (("Lead", "sf_lead_id"), ("Contact", "sf_contact_id")):
        obj = objects[sobject]
        flag = obj.sync_flag_field
        for record in records[sobject]:
            rows = [r for r in by_id.get(record["Id"], []) if r[column] == record["Id"]]
            if len(rows) > 1:
                result.duplicated.append(f"{sobject} {record['Id']} in {len(rows)} customers")
            if record["IsDeleted"]:
                if any(not r["sf_deleted"] for r in rows):
                    result.not_marked_deleted.append(f"{sobject} {record['Id']}")
                continue
            if sobject == "Lead" and record.get("IsConverted"):
                continue  # its contact is the customer now
            if flag and record.get(flag):
                result.flags_not_reset.append(f"{sobject} {record['Id']}")
            built = build_customer_row(obj, record)
            if not isinstance(built, CustomerRow):
                continue  # a record the mapping refuses goes to sync_error, by design
            if not rows:
                result.lost.append(f"{sobject} {record['Id']}")
                continue
            differences = {name: (value, rows[0].get(name)) for name, value in built.values.items()
                           if _normal(rows[0].get(name)) != _normal(value)}
            if differences or rows[0]["sf_deleted"]:
                result.stale.append(f"{sobject} {record['Id']}: {differences or 'marked deleted'}")
    return result


def _normal(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, (float, Decimal)):
        return round(float(value), 6)
    return value


def check_preferences(objects: dict[str, Any], truth: dict[int, tuple[bool, bool]], customers: dict[int, dict],
                      records: dict[str, dict[str, dict]], open_errors: set[str]) -> list[str]:
    """Every preference change is in Salesforce (newsletter, opt-in as the mapping reads them back) or an open
    ``campaign:preferences`` error; returns the ones that are neither."""
    from deployteq_salesforce.flows.customers.mapping import CustomerRow, build_customer_row

    lost = []
    for customer_id, (newsletter, optin) in truth.items():
        if str(customer_id) in open_errors:
            continue
        customer = customers.get(customer_id)
        if customer is None:
            lost.append(f"customer {customer_id}: gone from Deployteq")
            continue
        sobject, sf_id = ("Contact", customer["sf_contact_id"]) if customer["sf_contact_id"] else ("Lead", customer["sf_lead_id"])
        record = records[sobject].get(sf_id)
        built = build_customer_row(objects[sobject], record) if record else None
        if not isinstance(built, CustomerRow):
            lost.append(f"customer {customer_id}: {sobject} {sf_id} not readable in Salesforce")
            continue
        got = (built.values.get("newsletter"), built.values.get("email_optin"))
        if got != (newsletter, optin):
            lost.append(f"customer {customer_id}: Salesforce {sobject} {sf_id} has {got}, Deployteq changed to {(newsletter, optin)}")
    return lost


@dataclass
class MomentCheck:
    lost: list[str] = field(default_factory=list)
    sent_twice: list[str] = field(default_factory=list)


def check_contact_moments(moments: list[dict], salesforce: list[dict]) -> MomentCheck:
    """``moments``: contact_moment rows with the customer's ``sf_lead_id`` / ``sf_contact_id``;
    ``salesforce``: every ClangLead/ClangContact contact-moment record."""
    result = MomentCheck()
    by_key: dict[str, list[dict]] = defaultdict(list)
    for record in salesforce:
        by_key[str(record["Deployteq_Id__c"])].append(record)
    result.sent_twice += [f"contact moment {key}: {len(found)} Salesforce records" for key, found in by_key.items()
                          if len(found) > 1]
    for moment in moments:
        if not (moment["sf_contact_id"] or moment["sf_lead_id"]):
            continue  # no Salesforce id: never sent, by design (R11)
        found = by_key.get(str(moment["contact_moment_id"]))
        if not found:
            result.lost.append(f"contact moment {moment['contact_moment_id']}: not in Salesforce")
            continue
        record = found[0]
        if (int(record.get("Open_Count__c") or 0), int(record.get("Click_Count__c") or 0)) != (
            moment["open_count"], moment["click_count"]
        ):
            result.lost.append(f"contact moment {moment['contact_moment_id']}: Salesforce has opens/clicks "
                               f"{record.get('Open_Count__c')}/{record.get('Click_Count__c')}, Deployteq "
                               f"{moment['open_count']}/{moment['click_count']}")
    return result


def check_link_rows(sobject: str, records: list[dict], rows: dict[str, dict], columns: dict[str, str], *,
                    flag: str | None = None) -> list[str]:
    """Datamodel rows of an object link: every live (flagged) record with its latest values, none of deleted ones.
    ``columns``: Salesforce field -> datamodel column."""
    problems = []
    live = {r["Id"]: r for r in records if not r.get("IsDeleted")}
    for record_id, record in live.items():
        if flag and record.get(flag):
            problems.append(f"{sobject} {record_id}: sync column not reset")
        row = rows.get(record_id)
        if row is None:
            problems.append(f"{sobject} {record_id}: no datamodel row")
            continue
        different = {f: (record.get(f), row.get(c)) for f, c in columns.items() if record.get(f) != row.get(c)}
        if different:
            problems.append(f"{sobject} {record_id}: {different}")
    problems += [f"{sobject} {record_id}: deleted in Salesforce, still in the datamodel" for record_id in rows
                 if record_id not in live]
    return problems

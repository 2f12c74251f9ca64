"""Bulk API 2.0: query jobs paged by locator, ingest jobs with successful and failed results."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from include.salesforce_emulator import schema
from include.salesforce_emulator.db import MemoryOnlyStateDB, StateDB
from include.salesforce_emulator.limits import Clock
from include.salesforce_emulator.bulk import (CSV_CHUNK_ROWS, CsvRowValues, csv_cells, csv_chunks, csv_text,
                                              query_csv_chunks, query_rows)
from include.salesforce_emulator.store import Store, Txn, parse_values
from include.salesforce_emulator.values import RecordError


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_query_job_pages_results_by_locator(sf, emulator):
    emulator.seed("Lead", [{"LastName": f"L{i:04d}", "Company": "X"} for i in range(2500)])
    client = sf.bulk2.Lead._client
    job = client.create_job("query", "SELECT Id, LastName FROM Lead ORDER BY LastName")
    assert client.get_job(job["id"], True)["state"] == "JobComplete"
    first = client.get_query_results(job["id"], max_records=1000)
    assert first["number_of_records"] == 1000 and first["locator"]
    second = client.get_query_results(job["id"], first["locator"], max_records=1000)
    last = client.get_query_results(job["id"], second["locator"], max_records=1000)
    assert (last["number_of_records"], last["locator"]) == (500, "")  # "null" on the wire
    names = [row["LastName"] for part in (first, second, last) for row in _rows(part["records"])]
    assert names == [f"L{i:04d}" for i in range(2500)]


def test_query_csv_formats_values_like_salesforce(sf, emulator):
    [account_id] = emulator.seed("Account", [{"Name": 'Tulp "Bloemen", BV'}])
    emulator.seed("Contact", [{"LastName": "Jansen", "AccountId": account_id, "Newsletter__c": True,
                               "CreatedDate": "2024-02-03T04:05:06Z"},
                              {"LastName": "Bos", "Email": None}])
    text = "".join(sf.bulk2.Contact.query(
        "SELECT LastName, Email, Newsletter__c, CreatedDate, Account.Name FROM Contact ORDER BY LastName", wait=0))
    assert text.splitlines()[0] == '"LastName","Email","Newsletter__c","CreatedDate","Account.Name"'
    rows = _rows(text)
    assert rows[0] == {"LastName": "Bos", "Email": "", "Newsletter__c": "false",
                       "CreatedDate": rows[0]["CreatedDate"], "Account.Name": ""}
    assert rows[1]["Account.Name"] == 'Tulp "Bloemen", BV' and rows[1]["Newsletter__c"] == "true"
    assert rows[1]["CreatedDate"] == "2024-02-03T04:05:06.000Z"


def test_query_all_job_includes_deleted_rows(sf, emulator):
    ids = emulator.seed("Lead", [{"LastName": "A", "Company": "X"}, {"LastName": "B", "Company": "X"}])
    emulator.delete([ids[0]])
    assert len(_rows("".join(sf.bulk2.Lead.query("SELECT Id FROM Lead", wait=0)))) == 1
    assert len(_rows("".join(sf.bulk2.Lead.query_all("SELECT Id, IsDeleted FROM Lead", wait=0)))) == 2


def test_query_results_default_to_50000_per_chunk(api, emulator):
    emulator.seed("Lead", [{"LastName": f"L{i}", "Company": "X"} for i in range(50001)])
    job = api("POST", "jobs/query", json={"operation": "query", "query": "SELECT Id FROM Lead"}).json()
    response = api("GET", f"jobs/query/{job['id']}/results")
    assert response.headers["Sforce-NumberOfRecords"] == "50000" and response.headers["Sforce-Locator"] != "null"


def test_query_results_hold_the_records_as_the_job_found_them(api, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Smit", "Company": "X", "City": "Ede"}])
    job = api("POST", "jobs/query", json={"operation": "query", "query": "SELECT City FROM Lead"}).json()
    emulator.update("Lead", [{"Id": lead_id, "City": "Zeist"}])

    assert api("GET", f"jobs/query/{job['id']}/results").text == '"City"\n"Ede"\n'


def test_relationship_fields_are_read_when_the_job_completes(api, emulator):
    [account_id] = emulator.seed("Account", [{"Name": "Tulp BV"}])
    emulator.seed("Contact", [{"LastName": "Jansen", "AccountId": account_id}])
    job = api("POST", "jobs/query", json={"operation": "query", "query": "SELECT Account.Name FROM Contact"}).json()
    emulator.update("Account", [{"Id": account_id, "Name": "Roos BV"}])

    assert api("GET", f"jobs/query/{job['id']}/results").text == '"Account.Name"\n"Tulp BV"\n'


def test_large_result_pages_are_streamed_whole(api, emulator):
    emulator.seed("Lead", [{"LastName": f"L{i:05d}", "Company": "X"} for i in range(12_345)])
    job = api("POST", "jobs/query", json={"operation": "query",
                                          "query": "SELECT LastName FROM Lead ORDER BY LastName"}).json()

    response = api("GET", f"jobs/query/{job['id']}/results", params={"maxRecords": 12_000})

    assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
    assert response.headers["Sforce-NumberOfRecords"] == "12000"
    assert [row["LastName"] for row in _rows(response.text)] == [f"L{i:05d}" for i in range(12_000)]
    assert emulator.counters()["server_seconds"]["by_endpoint"]["GET jobs/query/{id}/results"] > 0


def test_query_job_with_bad_soql_is_refused(sf):
    with pytest.raises(SalesforceMalformedRequest):
        sf.bulk2.Lead._client.create_job("query", "SELECT Nope__c FROM Lead")


@pytest.mark.parametrize("soql", ["SELECT COUNT() FROM Lead", "SELECT Status, COUNT(Id) FROM Lead GROUP BY Status"])
def test_query_job_refuses_aggregate_queries(sf, soql):
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.bulk2.Lead._client.create_job("query", soql)
    assert "Aggregate" in str(refused.value)


def test_ingest_insert_reports_successes_and_failures(sf, emulator):
    csv_text = "LastName,Company,Email,NumberOfEmployees\nSmit,Acme,smit@example.nl,10\n,Acme,geen@example.nl,5\n" \
               "Vos,Acme,vos@example.nl,veel\n"
    client = sf.bulk2.Lead._client
    job = client.create_job("insert")
    client.upload_job_data(job["id"], csv_text)
    client.close_job(job["id"])
    info = client.get_job(job["id"], False)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 3, 2)
    successful = _rows(client.get_ingest_results(job["id"], "successfulResults"))
    failed = _rows(client.get_ingest_results(job["id"], "failedResults"))
    assert [(r["sf__Created"], r["LastName"]) for r in successful] == [("true", "Smit")]
    assert successful[0]["sf__Id"] == emulator.records("Lead")[0]["Id"]
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]")
    assert failed[1]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    assert failed[1]["Email"] == "vos@example.nl"


def test_ingest_upsert_and_null_marker(sf, emulator):
    emulator.seed("ClangLeadContactMoment__c", [{"Deployteq_Id__c": "DT-1", "Subject__c": "Oud", "Opened__c": True}])
    result = sf.bulk2.ClangLeadContactMoment__c.upsert(
        records=[{"Deployteq_Id__c": "DT-1", "Subject__c": "#N/A", "Opened__c": "false"},
                 {"Deployteq_Id__c": "DT-2", "Subject__c": "Nieuw", "Opened__c": "true"}],
        external_id_field="Deployteq_Id__c", wait=0)
    assert result[0]["numberRecordsFailed"] == 0
    stored = {r["Deployteq_Id__c"]: r for r in emulator.records("ClangLeadContactMoment__c")}
    assert (stored["DT-1"]["Subject__c"], stored["DT-1"]["Opened__c"]) == (None, False)
    assert stored["DT-2"]["Subject__c"] == "Nieuw"


def test_ingest_with_unknown_column_fails_the_job(sf):
    client = sf.bulk2.Lead._client
    job = client.create_job("insert")
    client.upload_job_data(job["id"], "LastName,Bogus__c\nA,1\n")
    client.close_job(job["id"])
    info = client.get_job(job["id"], False)
    assert info["state"] == "Failed" and "Bogus__c" in info["errorMessage"]


def test_ingest_delete(sf, emulator):
    ids = emulator.seed("Lead", [{"LastName": "A", "Company": "X"}, {"LastName": "B", "Company": "X"}])
    result = sf.bulk2.Lead.delete(records=[{"Id": ids[0]}], wait=0)
    assert result[0]["numberRecordsProcessed"] == 1
    assert [r["Id"] for r in emulator.records("Lead")] == [ids[1]]


def test_all_ingest_records_through_simple_salesforce(sf):
    (job,) = sf.bulk2.Lead.insert(records=[{"LastName": "Visser", "Company": "Acme"}, {"Company": "No name"}])

    outcome = sf.bulk2.Lead.get_all_ingest_records(job["job_id"])  # asks for unprocessedRecords in camel case

    assert [r["LastName"] for r in outcome["successfulRecords"]] == ["Visser"]
    assert outcome["failedRecords"][0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert outcome["unprocessedRecords"] == []


@pytest.mark.parametrize("sobject, names, rows", [
    ("ClangLeadContactMoment__c",
     ["Name", "Lead__c", "Opened__c", "Open_Count__c", "Sent_Date__c", "First_Opened_Date__c", "Bounce_Type__c"],
     [["A", "00Q8d0000000001AAA", "true", "2", "2024-03-01T10:15:00.000+0000", "", "hard"],
      ["B", "", "TRUE", "#N/A", "2024-03-01", "#N/A", "#N/A"],
      ["C", "x", "maybe", "x", "bad", "2024-02-30T10:00:00Z", ""],  # the first bad cell is the error
      ["D", "x", "false", "x", "bad", "", ""],
      ["E", "x", "false", "1e2", "bad", "", ""],
      ["F", "x", "false", "1e2", "2024-03-01T12:00:00+02:00", "2024-03-01 10:00", ""],
      # every cell given (the per-row path in C): nulls in text and converted columns, bad cells, extra cells
      ["G", "#N/A", "#N/A", "#N/A", "2024-03-01T10:15:00.000+0000", "#N/A", "#N/A"],
      ["H", "x", "TRUE", "3", "#N/A", "2024-03-01T10:15:00Z", "soft"],
      ["I", "x", "true", "x", "bad", "#N/A", "hard"],
      ["J", "#N/A", "false", "1", "2024-03-01", "2024-13-01T00:00:00Z", "#N/A"],
      ["K", "x", "false", "1", "2024-03-01", "#N/A", "#N/A", "extra", ""]]),
    ("Lead", ["Id", "City", "NumberOfEmployees", "HasOptedOutOfEmail", "AnnualRevenue"],
     [["00Q8d0000000001AAA", "Zeist", "12.0", "", "3"], ["", "", "", "", ""], ["#N/A"] * 5, ["x", "#N/A", "1", "no", "2"],
      ["x", "y", "12.5", "true", "z"], ["x", "y", "4", "no", "z"], ["x", "y", "4", "false", "1.5"]]),
])
def test_csv_row_values_match_the_general_path(sobject, names, rows):
    """The per-job column plan of Bulk 2.0 ingest gives what parse_values gives per row: values, order, errors."""
    sdef = schema.OBJECTS[sobject]
    values_of = CsvRowValues(sdef, names)

    def outcome(parse, row):
        try:
            values = parse(row)
        except RecordError as error:
            return error.as_bulk_error()
        return list(values.items())  # the order counts: it decides which error a write reports first

    for _ in range(2):  # the second time from the column's cache of converted texts
        for row in rows:
            expected = outcome(lambda r: parse_values(sdef, csv_cells(dict(zip(names, r))), strict_types=False), row)
            assert outcome(values_of, row) == expected, row


class _Selected:  # what query_rows reads of a compiled query
    def __init__(self, sobject: str, names: list[str]):
        self.sobject, self.select_paths = sobject, [(name,) for name in names]


@pytest.mark.parametrize("delimiter, line_ending", [(",", "\n"), (";", "\r\n"), ("\t", "\n")])
def test_query_csv_chunks_writes_what_csv_writer_writes(delimiter, line_ending):
    """Result pages are built column by column (query_csv_chunks): the bytes and chunks csv.writer (every cell
    quoted) gives of the cells the rows had, for odd values too (quotes, line breaks, nulls, a missing field,
    numbers, unexpected types) and across chunks."""
    names = ["Id", "FirstName", "Email", "Status", "HasOptedOutOfEmail", "SystemModstamp", "ConvertedDate",
             "NumberOfEmployees", "AnnualRevenue"]
    odd = [None, "", '"', 'a "b" c', "x\r\ny", ",;\t", "ü✓", True, 0, -0.0, 1e20, "2024-03-01T10:15:00.000+0000"]
    records = []
    for i in range(CSV_CHUNK_ROWS + 7):
        record = {"Id": f"00Q{i:015d}", "FirstName": [f"Jan{i}", None, 'Piet "PJ"'][i % 3], "Email": f"l{i}@x.nl",
                  "Status": ["Open", None][i % 2], "HasOptedOutOfEmail": i % 3 == 0,
                  "SystemModstamp": f"2024-03-01T10:15:{i % 60:02}.000+0000", "ConvertedDate": "2024-02-29",
                  "NumberOfEmployees": [None, i, 2.5][i % 3], "AnnualRevenue": None}
        if i % 97 == 0:
            record[names[i % len(names)]] = odd[i % len(odd)]
        if i == 4000:
            del record["Email"]
        records.append(record)

    def cells(record: dict) -> list:
        return [csv_text(value) if name in ("HasOptedOutOfEmail", "SystemModstamp") else value
                for name, value in ((name, record.get(name)) for name in names)]

    header, rows, columns_of = query_rows(_Selected("Lead", names), records, None, "59.0")
    for part in (rows, rows[:1], rows[:0]):
        expected = list(csv_chunks(header, part, cells, delimiter, line_ending))
        assert list(query_csv_chunks(header, part, columns_of, delimiter, line_ending)) == expected


def _moment_store(tmp_path, name: str) -> tuple[Store, list[str]]:
    """A store with leads (one of them deleted) and contact moments, some of them keyed on a Deployteq id."""
    store = Store(StateDB(tmp_path / f"{name}.sqlite3"), Clock.__new__(Clock))
    store.clock.offset, store.clock.db = 0.0, None
    txn = Txn(store, schema.API_USER_ID)
    leads = [store.seed_record(txn, schema.OBJECTS["Lead"], {"LastName": f"L{i}", "Company": "C"}) for i in range(4)]
    store.soft_delete(txn, leads[3])
    for key in ("DT-1", "dt-2"):
        store.seed_record(txn, schema.OBJECTS["ClangLeadContactMoment__c"], {"Deployteq_Id__c": key, "Name": key})
    txn.commit()
    store.validation_rules.append({"sobject": "ClangLeadContactMoment__c", "field": "Subject__c",
                                   "equals": "verboden", "message": "Niet dit onderwerp"})
    return store, leads


def test_upserter_does_what_upsert_does(tmp_path, monkeypatch):
    """Store.upserter (the per-job plan of Bulk upserts) gives each row what Store.upsert gives: the record, its id
    (new ids numbered alike, also past a refused row), created or not, and the same first error."""
    monkeypatch.setattr(Clock, "now", lambda self: 1_780_000_000.0)
    sdef = schema.OBJECTS["ClangLeadContactMoment__c"]
    names = ["Lead__c", "Deployteq_Id__c", "Name", "Subject__c", "Opened__c", "Bounce_Type__c"]
    outcomes = []
    for name in ("plan", "general"):
        store, leads = _moment_store(tmp_path, name)
        rows = [
            [leads[0], "DT-1", "bestaand", "Hallo", "true", "hard"],  # updates, the key kept as stored
            [leads[0], "DT-2", "andere hoofdletters", "#N/A", "false", "#N/A"],
            [leads[1][:15], "DT-3", "nieuw", "Dag", "#N/A", "soft"],  # a 15-character reference stored as 18
            [leads[1], "DT-3", "weer", "Dag", "true", "soft"],  # the same key twice in one job: an update
            ["00Q8d000000ZZZZAAA", "DT-4", "onbekend", "x", "true", "#N/A"],
            ["abc", "DT-5", "misvormd", "x", "true", "#N/A"],
            [leads[3], "DT-6", "verwijderd", "x", "true", "#N/A"],
            [leads[2], "DT-7", "N" * 81, "x", "true", "#N/A"],
            [leads[2], "K" * 65, "lange sleutel", "x", "true", "#N/A"],
            [leads[2], "DT-1", "N" * 81, "x", "true", "#N/A"],
            [leads[2], "DT-8", "keuze", "x", "true", "middel"],
            [leads[2], "DT-9", "regel", "verboden", "true", "#N/A"],
            [leads[2], "#N/A", "geen sleutel", "x", "true", "#N/A"],
            [leads[2], "", "lege sleutel", "x", "true", "#N/A"],
            ["", "DT-10", "lege cellen", "", "", ""],
            [leads[2], "DT-11", "na een fout", "x", "yes", "#N/A"],
            [leads[2], "DT-12", "na een fout", "x", "true", "#N/A"],
        ]
        values_of = CsvRowValues(sdef, names)
        txn = Txn(store, schema.API_USER_ID)
        upsert = store.upserter(txn, sdef, "Deployteq_Id__c", names) if name == "plan" else None
        results = []
        for row in rows:
            try:
                values = values_of(row)
                results.append(upsert(values) if upsert else store.upsert(txn, sdef, "Deployteq_Id__c", values))
            except RecordError as error:
                results.append(error.as_bulk_error())
        txn.commit()
        records = sorted(store.records[sdef.name].values(), key=lambda record: record["Id"])
        outcomes.append((results, [list(record.items()) for record in records], store.id_counter,
                         sorted((key, index) for _fields, _message, index in store._unique[sdef.name]
                                for key in index.items())))
    assert outcomes[0] == outcomes[1]
    assert {result[1] for result in outcomes[0][0] if isinstance(result, tuple)} == {True, False}


def _update_store(tmp_path, name: str) -> tuple[Store, dict]:
    """A store with leads (deleted, converted, invalid by a validation rule, missing a required field), campaign
    members (one admin-seeded twice: its key held by the other; one whose key no record holds) and contact moments."""
    objects = schema.OBJECTS
    store = Store(StateDB(tmp_path / f"{name}.sqlite3"), Clock.__new__(Clock))
    store.clock.offset, store.clock.db = 0.0, None
    txn = Txn(store, schema.API_USER_ID)
    ids = {"leads": [store.seed_record(txn, objects["Lead"], {"FirstName": f"F{i}", "LastName": f"L{i}",
                                                              "Company": "C"}) for i in range(6)]}
    leads = ids["leads"]
    ids["forbidden"] = store.seed_record(txn, objects["Lead"], {"LastName": "V", "Company": "C", "City": "Verboden"})
    ids["incomplete"] = store.seed_record(txn, objects["Lead"], {"LastName": "Zonder bedrijf"})
    campaign = store.seed_record(txn, objects["Campaign"], {"Name": "Campagne"})
    ids["members"] = [store.seed_record(txn, objects["CampaignMember"], {"CampaignId": campaign, "LeadId": lead})
                      for lead in leads[:4]]
    ids["twin"] = store.seed_record(txn, objects["CampaignMember"], {"CampaignId": campaign, "LeadId": leads[0]})
    unowned, owner = (store.seed_record(txn, objects["CampaignMember"], {"CampaignId": campaign, "LeadId": leads[4]})
                      for _ in range(2))
    ids["unowned"] = unowned
    ids["moments"] = [store.seed_record(txn, objects["ClangLeadContactMoment__c"], {"Deployteq_Id__c": f"DT-{i}"})
                      for i in range(3)]
    txn.commit()
    txn = Txn(store, schema.API_USER_ID)
    store.soft_delete(txn, leads[5])
    store.hard_delete(txn, owner)
    ids["converted"] = leads[1]
    store.convert_lead(txn, leads[1], None, None)
    txn.commit()
    store.validation_rules.append({"sobject": "Lead", "field": "City", "equals": "Verboden", "message": "Niet hier"})
    return store, ids


@pytest.mark.parametrize("sobject, names, rows_of", [
    ("Lead", ["Sync_to_Deployteq__c"], lambda ids: [  # the flag reset of lead_sync
        [ids["leads"][0], "false"], [ids["leads"][0], "true"], [ids["leads"][2][:15], "false"],
        [ids["leads"][2][:15] + ids["leads"][2][15:].lower(), "false"], ["00Q8d000000ZZZZAAA", "false"],
        ["abc", "false"], [ids["leads"][5], "false"], [ids["converted"], "false"], [ids["members"][0], "false"],
        [ids["forbidden"], "false"], [ids["incomplete"], "false"], [ids["leads"][3], "maybe"],
        [ids["leads"][3], "#N/A"], [ids["leads"][4], ""], ["#N/A", "false"]]),
    ("Lead", ["FirstName", "LastName", "Email", "City"], lambda ids: [
        [ids["leads"][0], "Anna", "Jansen", "anna@example.nl", "Utrecht"],
        [ids["leads"][2], "#N/A", "B", "#N/A", "#N/A"],
        [ids["leads"][3], "X", "#N/A", "", ""], [ids["leads"][4], "X", "Y", "geen-adres", ""],
        [ids["leads"][4], "X", "Y", "", "C" * 41], [ids["leads"][4], "X", "Y", "", "Verboden"]]),
    ("Lead", ["Name"], lambda ids: [[ids["leads"][0], "Niet schrijfbaar"]]),
    ("CampaignMember", ["SyncWithClang__c"], lambda ids: [  # the flag reset of object_sync
        *([member, "false"] for member in ids["members"]), [ids["twin"], "false"], [ids["unowned"], "true"],
        [ids["unowned"], "false"], [ids["members"][1][:15], "true"]]),
    ("CampaignMember", ["Status"], lambda ids: [[ids["members"][2], "Responded"], [ids["members"][3], "Onbekend"],
                                                [ids["twin"], "Responded"]]),
    ("ClangLeadContactMoment__c", ["Deployteq_Id__c", "Lead__c"], lambda ids: [
        [ids["moments"][0], "DT-0", ids["leads"][0]], [ids["moments"][1], "dt-0", ""],
        [ids["moments"][1], "DT-9", ""], [ids["moments"][2], "DT-1", ids["leads"][5]],
        [ids["moments"][2], "DT-1", "abc"], [ids["moments"][2], "DT-1", ""],
        [ids["moments"][0], "#N/A", ""], [ids["moments"][0], "DT-0", ids["leads"][2][:15]]]),
])
def test_updater_does_what_update_does(tmp_path, monkeypatch, sobject, names, rows_of):
    """Store.updater (the per-job plan of Bulk updates) gives each row what Store.update gives: the record, the same
    first error, the same unique indexes (an unchanged key, one held by another record, one no record holds)."""
    monkeypatch.setattr(Clock, "now", lambda self: 1_780_000_000.0)
    sdef = schema.OBJECTS[sobject]
    values_of = CsvRowValues(sdef, names)
    outcomes = []
    for name in ("plan", "general"):
        store, ids = _update_store(tmp_path, name)
        txn = Txn(store, schema.API_USER_ID)
        update = store.updater(txn, sdef, names) if name == "plan" else None
        results = []
        for record_id, *cells in rows_of(ids):
            try:
                values = values_of(cells)
                results.append(update(record_id, values) if update else store.update(txn, sdef, record_id, values))
            except RecordError as error:
                results.append(error.as_bulk_error())
        txn.commit()
        outcomes.append((results, {sobject: sorted(list(record.items()) for record in table.values())
                                   for sobject, table in store.records.items()},
                         {sobject: [sorted(index.items()) for _fields, _message, index in indexes]
                          for sobject, indexes in store._unique.items()}))
    assert outcomes[0] == outcomes[1]
    assert any(len(result) == 18 for result in outcomes[0][0]) or not sdef.not_updateable.isdisjoint(names)


def test_no_derived_field_is_in_a_unique_index():
    """Store.updater leaves the unique indexes on none of a job's fields alone: _derive must set none of their
    fields."""
    for sdef in schema.OBJECTS.values():
        record = {name: f"{name} value" for name in sdef.field_names}
        record["Status"] = "Responded"
        derived = dict(record)
        Store._derive(sdef, derived, "2026-12-06T00:00:00.000+0000")
        changed = {name for name in derived if derived[name] != record.get(name)}
        indexed = {name for fields, _message in sdef.unique_together for name in fields} | set(sdef.external_ids)
        assert not changed & indexed, sdef.name


def test_a_bulk_jobs_txn_logs_nothing_in_a_memory_only_org(tmp_path, monkeypatch):
    """Txn(undoable=False), as a Bulk job writes: no undo log in a memory-only org (nothing to save), the log the
    database needs otherwise (the records it saves on commit)."""
    monkeypatch.setattr(Clock, "now", lambda self: 1_780_000_000.0)
    for db in (MemoryOnlyStateDB(), StateDB(tmp_path / "state.sqlite3")):
        store = Store(db, Clock.__new__(Clock))
        txn = Txn(store, schema.API_USER_ID, undoable=False)
        lead = store.create(txn, schema.OBJECTS["Lead"], {"LastName": "Bulk", "Company": "C"})
        store.delete(txn, schema.OBJECTS["Lead"], lead)
        assert bool(txn._undo) is bool(txn._tomb_undo) is db.keeps_records
        txn.commit()
        db.flush()
        assert store.records["Lead"][lead]["IsDeleted"] and lead in store.tombstones
        assert [record["Id"] for _sobject, record in db.load_records() if record["Id"] == lead] == (
            [lead] if db.keeps_records else [])

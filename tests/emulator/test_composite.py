"""Composite (``composite``) and Composite Batch (``composite/batch``): one API request, several calls."""

from __future__ import annotations

V = "/services/data/v59.0/"
HALTED = "PROCESSING_HALTED"


def _account_and_contact(**contact) -> list[dict]:
    return [
        {"method": "POST", "url": V + "sobjects/Account", "referenceId": "account", "body": {"Name": "Acme"}},
        {"method": "POST", "url": V + "sobjects/Contact", "referenceId": "contact",
         "body": {"LastName": "Jansen", "AccountId": "@{account.id}", **contact}},
        {"method": "GET", "url": V + "query?q=SELECT+Id,+Account.Name+FROM+Contact", "referenceId": "contacts"},
        {"method": "GET", "url": V + "sobjects/Contact/@{contacts.records[0].Id}?fields=LastName", "referenceId": "read"},
    ]


def test_subrequests_use_earlier_answers_and_count_as_one_request(api, emulator):
    answer = api("POST", "composite", json={"compositeRequest": _account_and_contact()})

    assert answer.status_code == 200
    results = answer.json()["compositeResponse"]
    assert [r["httpStatusCode"] for r in results] == [201, 201, 200, 200]
    account_id = results[0]["body"]["id"]
    assert results[0]["httpHeaders"]["Location"] == f"{V}sobjects/Account/{account_id}"
    assert results[2]["body"]["records"][0]["Account"]["Name"] == "Acme"
    assert results[3]["body"]["LastName"] == "Jansen"
    assert emulator.records("Contact")[0]["AccountId"] == account_id
    counters = emulator.counters()
    assert (counters["total"], counters["by_endpoint"]) == (1, {"POST composite": 1})


def test_all_or_none_rolls_back_every_subrequest_when_one_fails(api, emulator):
    requests = _account_and_contact(Email="not an address")  # the contact fails

    results = api("POST", "composite", json={"allOrNone": True, "compositeRequest": requests}).json()["compositeResponse"]

    assert results[0]["httpStatusCode"] == 400 and results[0]["body"][0]["errorCode"] == HALTED
    assert results[1]["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert all(r["body"][0]["errorCode"] == HALTED for r in results[2:])
    assert emulator.records("Account") == [] and emulator.records("Contact") == []


def test_without_all_or_none_earlier_work_stays_and_a_broken_reference_fails_alone(api, emulator):
    requests = _account_and_contact(Email="not an address")

    results = api("POST", "composite", json={"compositeRequest": requests}).json()["compositeResponse"]

    assert [r["httpStatusCode"] for r in results] == [201, 400, 200, 400]
    assert results[3]["body"][0]["errorCode"] == HALTED and "contacts.records[0]" in results[3]["body"][0]["message"]
    assert len(emulator.records("Account")) == 1 and emulator.records("Contact") == []


def test_a_collection_with_all_or_none_inside_a_composite_rolls_back_alone(api, emulator):
    collection = {"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Kept out"},
        {"attributes": {"type": "Contact"}, "Email": "missing@lastname.nl"},
    ]}
    requests = [
        {"method": "POST", "url": V + "sobjects/Account", "referenceId": "account", "body": {"Name": "Acme"}},
        {"method": "POST", "url": V + "composite/sobjects", "referenceId": "collection", "body": collection},
    ]

    results = api("POST", "composite", json={"allOrNone": True, "compositeRequest": requests}).json()["compositeResponse"]

    assert [r["httpStatusCode"] for r in results] == [201, 200]
    assert [a["Name"] for a in emulator.records("Account")] == ["Acme"]


def test_more_than_25_subrequests_are_refused(api):
    requests = [{"method": "GET", "url": V + "limits", "referenceId": f"r{n}"} for n in range(26)]
    answer = api("POST", "composite", json={"compositeRequest": requests})
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "LIMIT_EXCEEDED"


def test_batch_runs_independent_subrequests_and_can_halt_on_error(api, emulator):
    (lead_id,) = emulator.seed("Lead", [{"LastName": "Visser", "Company": "Acme"}])
    batch = [
        {"method": "PATCH", "url": f"v59.0/sobjects/Lead/{lead_id}", "richInput": {"LastName": "de Visser"}},
        {"method": "GET", "url": "v59.0/sobjects/Lead/00Q000000000000AAA"},
        {"method": "GET", "url": f"v59.0/sobjects/Lead/{lead_id}?fields=LastName"},
    ]

    going_on = api("POST", "composite/batch", json={"batchRequests": batch}).json()
    halting = api("POST", "composite/batch", json={"haltOnError": True, "batchRequests": batch}).json()

    assert going_on["hasErrors"] is True
    assert [r["statusCode"] for r in going_on["results"]] == [204, 404, 200]
    assert going_on["results"][2]["result"]["LastName"] == "de Visser"
    assert [r["statusCode"] for r in halting["results"]] == [204, 404, 412]
    assert halting["results"][2]["result"][0]["errorCode"] == "BATCH_PROCESSING_HALTED"
    assert emulator.counters()["by_endpoint"] == {"POST composite/batch": 2}


def test_unusual_subrequests_get_a_clear_answer_not_a_server_error(api, emulator):
    emulator.seed("Lead", [{"LastName": "Müller", "Company": "Acme"}])
    requests = [
        {"method": "GET", "url": V + "query?q=SELECT+Id+FROM+Lead+WHERE+LastName+=+'Müller'", "referenceId": "found"},
        {"method": "GET", "url": "@{found.done}", "referenceId": "odd"},  # a whole-URL reference to a Boolean
    ]

    results = api("POST", "composite", json={"compositeRequest": requests}).json()["compositeResponse"]

    assert results[0]["httpStatusCode"] == 200 and results[0]["body"]["totalSize"] == 1
    assert results[1]["httpStatusCode"] == 404


def test_malformed_composite_requests_are_refused(api):
    limits = {"method": "GET", "url": V + "limits", "referenceId": "limits"}
    bulk = {"method": "POST", "url": V + "jobs/ingest", "referenceId": "job", "body": {"object": "Lead", "operation": "insert"}}

    headers_not_an_object = api("POST", "composite", json={"compositeRequest": [{**limits, "httpHeaders": ["x"]}]})
    all_or_none_as_text = api("POST", "composite", json={"allOrNone": "false", "compositeRequest": [limits]})
    with_a_bulk_job = api("POST", "composite", json={"compositeRequest": [bulk]}).json()["compositeResponse"][0]

    assert headers_not_an_object.status_code == 400 and all_or_none_as_text.status_code == 400
    assert with_a_bulk_job["httpStatusCode"] == 400 and "Bulk" in with_a_bulk_job["body"][0]["message"]

"""SOSL search (``GET search/?q=``) as simple-salesforce's ``search`` / ``quick_search`` use it."""

from __future__ import annotations


def _found(result: dict) -> list[tuple[str, str]]:
    """(type, Id) of each search record, in answer order."""
    return [(record["attributes"]["type"], record["Id"]) for record in result["searchRecords"]]


def _last_names(result: dict) -> list[str]:
    return sorted(record["LastName"] for record in result["searchRecords"])


def test_returning_gives_each_objects_field_list_filtered_by_its_where(sf, emulator):
    utrecht, _amsterdam = emulator.seed("Lead", [
        {"LastName": "Jansen", "Company": "Tulp BV", "City": "Utrecht"},
        {"LastName": "Jansen", "Company": "Roos BV", "City": "Amsterdam"},
    ])
    [contact_id] = emulator.seed("Contact", [{"FirstName": "Piet", "LastName": "Jansen", "Email": "piet@example.nl"}])
    emulator.seed("Account", [{"Name": "Jansen Holding"}])

    result = sf.search("FIND {Jansen} RETURNING Lead(Id, Company, City WHERE City = 'Utrecht'), "
                       "Contact(LastName, Email)")

    assert result == {"searchRecords": [
        {"attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{utrecht}"},
         "Id": utrecht, "Company": "Tulp BV", "City": "Utrecht"},
        {"attributes": {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{contact_id}"},
         "LastName": "Jansen", "Email": "piet@example.nl"},
    ]}


def test_quick_search_finds_a_lead_by_email_and_a_contact_by_name(sf, emulator):
    lead_id, _other = emulator.seed("Lead", [
        {"LastName": "de Vries", "Company": "Tulp BV", "Email": "marieke.devries@example.nl"},
        {"LastName": "Visser", "Company": "Roos BV", "Email": "jan.visser@example.nl"},
    ])
    [contact_id] = emulator.seed("Contact", [{"FirstName": "Pieter", "LastName": "Bakker"}])
    emulator.seed("Contact", [{"FirstName": "Anna", "LastName": "Smit"}])

    by_email = sf.quick_search("marieke.devries@example.nl")
    by_name = sf.quick_search("Bakker")

    assert _found(by_email) == [("Lead", lead_id)]
    assert set(by_email["searchRecords"][0]) == {"attributes", "Id"}  # no RETURNING: the Id only
    assert _found(by_name) == [("Contact", contact_id)]


def test_wildcards_and_a_phrase(sf, emulator):
    emulator.seed("Lead", [
        {"LastName": name, "Company": company}
        for name, company in [("Johnson", "Van Dijk Bouw"), ("Johnny", "Dijk en Van"), ("Jon", "Acme"),
                              ("Joan", "Acme")]
    ])

    assert _last_names(sf.search("FIND {john*} RETURNING Lead(LastName)")) == ["Johnny", "Johnson"]
    assert _last_names(sf.search("FIND {jo?n} RETURNING Lead(LastName)")) == ["Joan"]
    assert _last_names(sf.search('FIND {"van dijk"} RETURNING Lead(LastName)')) == ["Johnson"]


def test_words_are_anded_across_fields_unless_or_is_written(sf, emulator):
    emulator.seed("Lead", [
        {"LastName": "Bakker", "Company": "Tulp BV", "City": "Utrecht"},
        {"LastName": "Bakker", "Company": "Roos BV", "City": "Amsterdam"},
        {"LastName": "Visser", "Company": "Iris BV", "City": "Utrecht"},
    ])

    both = sf.search("FIND {bakker utrecht} RETURNING Lead(LastName, City)")["searchRecords"]
    either = sf.search("FIND {bakker OR utrecht} RETURNING Lead(LastName, City)")

    assert [(r["LastName"], r["City"]) for r in both] == [("Bakker", "Utrecht")]
    assert len(either["searchRecords"]) == 3


def test_email_fields_scope_does_not_match_a_name(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Smit", "Company": "Tulp BV", "Email": "info@tulp.nl"}])

    assert sf.search("FIND {Smit} IN EMAIL FIELDS RETURNING Lead(Id)")["searchRecords"] == []
    assert _found(sf.search("FIND {Smit} IN ALL FIELDS RETURNING Lead(Id)")) == [("Lead", lead_id)]
    assert _found(sf.search("FIND {tulp} IN EMAIL FIELDS RETURNING Lead(Id)")) == [("Lead", lead_id)]


def test_only_text_fields_are_searched(sf, emulator):
    [account_id] = emulator.seed("Account", [{"Name": "Tulp BV"}])
    emulator.seed("Contact", [{"LastName": "Jansen", "AccountId": account_id}])

    assert sf.search(f"FIND {{{account_id}}} RETURNING Contact(Id)")["searchRecords"] == []


def test_deleted_records_are_never_found(sf, emulator):
    kept, deleted = emulator.seed("Lead", [{"LastName": "Mulder", "Company": "A"},
                                           {"LastName": "Mulder", "Company": "B"}])
    emulator.delete([deleted])

    assert _found(sf.search("FIND {Mulder} RETURNING Lead(Id)")) == [("Lead", kept)]


def test_overall_and_per_object_limits(sf, emulator):
    emulator.seed("Lead", [{"LastName": f"Acme {i}", "Company": "Acme"} for i in range(5)])
    emulator.seed("Contact", [{"LastName": f"Acme {i}"} for i in range(5)])

    overall = sf.search("FIND {Acme} RETURNING Lead(Id), Contact(Id) LIMIT 7")
    per_object = sf.search("FIND {Acme} RETURNING Lead(Id LIMIT 2), Contact(Id)")

    assert [t for t, _ in _found(overall)] == ["Lead"] * 5 + ["Contact"] * 2
    assert [t for t, _ in _found(per_object)] == ["Lead"] * 2 + ["Contact"] * 5


def test_malformed_sosl_is_refused_with_salesforces_code(api):
    response = api("GET", "search/", params={"q": "FIND {John|Doe} RETURNING Lead"})

    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "MALFORMED_SEARCH"
    assert error["message"].endswith("line 1:10 mismatched character '|' expecting '}'")


def test_a_one_character_term_is_refused(api):
    response = api("GET", "search/", params={"q": "FIND {a} RETURNING Lead"})

    assert response.status_code == 400
    assert response.json() == [{"message": "search term must be longer than one character: a",
                                "errorCode": "INVALID_SEARCH"}]


def test_unknown_object_or_field_in_returning_gives_soql_errors(api):
    unknown_object = api("GET", "search/", params={"q": "FIND {Acme} RETURNING Lead(Id), Prospect(Id)"})
    unknown_field = api("GET", "search/", params={"q": "FIND {Acme} RETURNING Lead(Id, Shoe_Size__c)"})

    assert unknown_object.status_code == 400 and unknown_field.status_code == 400
    [type_error], [field_error] = unknown_object.json(), unknown_field.json()
    assert type_error["errorCode"] == "INVALID_TYPE"
    assert "\nFIND {Acme} RETURNING Lead(Id), Prospect(Id)\n" in type_error["message"]
    assert "sObject type 'Prospect' is not supported." in type_error["message"]
    assert field_error["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Shoe_Size__c' on entity 'Lead'." in field_error["message"]


def test_each_search_counts_as_one_api_request(sf, emulator):
    emulator.seed("Lead", [{"LastName": "Acme", "Company": "Acme"}])

    sf.search("FIND {Acme} RETURNING Lead(Id), Contact(Id)")
    sf.quick_search("Acme")

    counters = emulator.counters()
    assert (counters["total"], counters["by_endpoint"]) == (2, {"GET search": 2})


def test_returning_refuses_aggregates_and_subqueries(api):
    for returning in ("Account(COUNT())", "Account(COUNT(Id))", "Account(Name, (SELECT LastName FROM Contacts))"):
        answer = api("GET", "search/", params={"q": f"FIND {{Acme}} RETURNING {returning}"})
        assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "MALFORMED_SEARCH", returning

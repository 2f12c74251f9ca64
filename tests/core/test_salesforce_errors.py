"""The one parser of Bulk API ingest errors (``sf__Error``), shared by contact moments and synchronize."""

from deployteq_salesforce.core.salesforce_errors import parse_bulk_error


def test_bulk_error_text_is_split_into_code_message_and_fields():
    assert parse_bulk_error("FIELD_CUSTOM_VALIDATION_EXCEPTION:Onderwerp: niet toegestaan:Subject__c --") == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Onderwerp: niet toegestaan", ("Subject__c",))
    assert parse_bulk_error("ENTITY_IS_DELETED:entity is deleted:--") == ("ENTITY_IS_DELETED", "entity is deleted", ())
    assert parse_bulk_error("") == ("UNKNOWN_ERROR", "Salesforce gave no message", ())


def test_bulk_error_of_a_validation_rule_and_of_a_converted_lead():
    assert parse_bulk_error("FIELD_CUSTOM_VALIDATION_EXCEPTION:No partners:LeadSource --") == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No partners", ("LeadSource",))
    assert parse_bulk_error("CANNOT_UPDATE_CONVERTED_LEAD:cannot reference converted lead:--") == (
        "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", ())

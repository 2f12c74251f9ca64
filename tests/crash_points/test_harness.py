"""What the crash-point tests count as a write sent to Salesforce."""

from tests.crash_points.harness import writes


def test_crash_point_writes_count_batches_upserts_and_bulk_uploads_but_not_reads():
    counters = {"by_endpoint": {
        "PATCH composite/sobjects": 2, "PATCH composite/sobjects/ClangLeadContactMoment__c/Deployteq_Id__c": 3,
        "PUT jobs/ingest/{id}/batches": 1, "POST composite/sobjects/Lead": 4, "GET query": 9, "POST jobs/ingest": 1}}
    assert writes(counters) == 6

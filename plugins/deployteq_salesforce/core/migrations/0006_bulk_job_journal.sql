-- Bulk API 2.0 ingest jobs a flow closed but whose results it has not recorded yet.  Written once the
-- data is uploaded, before Salesforce may process it; deleted in the transaction that records the
-- results.  After a crash the next run reads such a job's results from Salesforce instead of sending
-- its records again ("resume from what reached Salesforce").
CREATE TABLE bulk_job_journal (
    job_id     text PRIMARY KEY,
    flow       text NOT NULL,
    sobject    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    items      jsonb NOT NULL  -- what the flow needs to record each record's result
);
CREATE INDEX bulk_job_journal_flow_idx ON bulk_job_journal (flow, created_at);

-- What Salesforce last sent per Lead/Contact: a hash of the record's mapped values.  A record read
-- again without a change in Salesforce (the lookback, the read after a flag reset, a resumed run) is
-- not written again, so a change made on the Deployteq side meanwhile (e.g. a preference centre's,
-- waiting for Salesforce Synchronize) is not undone.  Full loads write every record regardless.
CREATE TABLE source_record (
    sf_id       text PRIMARY KEY,
    values_hash bytea NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

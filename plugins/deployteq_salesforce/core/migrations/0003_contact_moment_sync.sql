-- Deployteq store, version 3: what the contact-moment flow sent to Salesforce (R11, R12).
-- One row per contact moment the flow has dealt with; a moment without a row was never sent.

CREATE TABLE contact_moment_sync (
    contact_moment_id bigint PRIMARY KEY REFERENCES contact_moment (contact_moment_id) ON DELETE CASCADE,
    -- contact_moment.changed_at of the version last dealt with (sent, or found unchanged): a row whose
    -- changed_at differs is looked at again (compared with <>, not >, so clock order never hides a change)
    synced_changed_at timestamptz,
    -- hash of the payload Salesforce last accepted (object + field values): decides "changed since sent"
    sent_hash         text,
    sf_object         text CHECK (sf_object IN ('ClangLeadContactMoment__c', 'ClangContactContactMoment__c')),
    sf_parent_id      text,   -- the Lead / Contact id the record hangs under
    sf_record_id      text,   -- the custom object record's id (unknown for a Bulk job without results)
    sent_at           timestamptz,
    -- failures of the payload with hash failed_hash; retried by later runs until the flow's limit
    attempts          integer NOT NULL DEFAULT 0,
    failed_hash       text,
    last_error        text,
    last_error_at     timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX contact_moment_sync_sf_record_id_idx ON contact_moment_sync (sf_record_id) WHERE sf_record_id IS NOT NULL;
CREATE INDEX contact_moment_sync_failed_idx ON contact_moment_sync (contact_moment_id) WHERE failed_hash IS NOT NULL;

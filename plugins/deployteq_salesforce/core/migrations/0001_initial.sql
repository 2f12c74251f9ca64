-- Deployteq store, version 1.
-- The runner (DeployteqHook.migrate) executes this file in one transaction with
-- search_path set to the target schema, so names here are unqualified.

-- The Deployteq customer table ("klanten").
CREATE TABLE customer (
    customer_id         bigserial PRIMARY KEY,
    email               text,
    email_key           text GENERATED ALWAYS AS (lower(btrim(email))) STORED,
    first_name          text,
    last_name           text,
    salutation          text,
    company             text,
    job_title           text,
    phone               text,
    mobile_phone        text,
    street              text,
    postal_code         text,
    city                text,
    country             text,
    birth_date          date,
    lead_source         text,
    industry            text,
    annual_revenue      numeric,
    number_of_employees integer,
    preferences         text,
    newsletter          boolean,
    status              text CHECK (status IN ('Prospect', 'Klant')),
    email_optin         boolean NOT NULL DEFAULT false,
    sf_lead_id          text,
    sf_contact_id       text,
    sf_system_modstamp  timestamptz,
    sf_deleted          boolean NOT NULL DEFAULT false,
    sf_deleted_at       timestamptz,
    -- Salesforce id of the record this one was merged into (Salesforce merge or a lost duplicate)
    sf_merged_into      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Deferrable: within one batch a lead or contact id may move from one customer to another
    -- (lead conversion, duplicates); the writer defers the check to the end of its transaction.
    CONSTRAINT customer_sf_lead_id_key UNIQUE (sf_lead_id) DEFERRABLE INITIALLY IMMEDIATE,
    CONSTRAINT customer_sf_contact_id_key UNIQUE (sf_contact_id) DEFERRABLE INITIALLY IMMEDIATE
);
-- E-mail uniqueness is the sync's job (Id mode allows duplicates), so this index is not unique.
CREATE INDEX customer_email_key_idx ON customer (email_key) WHERE email_key <> '';
CREATE INDEX customer_updated_at_idx ON customer (updated_at);

-- updated_at moves only when something else in the row changed.  A BEFORE trigger may not look
-- at generated columns (email_key), so the comparison leaves it out, and updated_at itself.
CREATE FUNCTION touch_customer_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - 'updated_at' - 'email_key') IS DISTINCT FROM (to_jsonb(OLD) - 'updated_at' - 'email_key') THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER customer_touch_updated_at
    BEFORE UPDATE ON customer
    FOR EACH ROW EXECUTE FUNCTION touch_customer_updated_at();

-- One row per e-mail sent from Deployteq, with what the recipient did with it (R11).
CREATE TABLE contact_moment (
    contact_moment_id  bigserial PRIMARY KEY,
    customer_id        bigint REFERENCES customer (customer_id) ON DELETE CASCADE,
    mailing_id         bigint,
    mailing_name       text,
    subject            text,
    sent_at            timestamptz NOT NULL,
    opened_first_at    timestamptz,
    open_count         integer NOT NULL DEFAULT 0,
    clicked_first_at   timestamptz,
    click_count        integer NOT NULL DEFAULT 0,
    bounced_at         timestamptz,
    bounce_type        text CHECK (bounce_type IN ('hard', 'soft')),
    online_version_url text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    changed_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_moment_customer_id_idx ON contact_moment (customer_id);
CREATE INDEX contact_moment_changed_at_idx ON contact_moment (changed_at, contact_moment_id);

CREATE FUNCTION touch_contact_moment_changed_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER contact_moment_touch_changed_at
    BEFORE UPDATE ON contact_moment
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION touch_contact_moment_changed_at();

-- Per flow: where its incremental read stands, plus free-form state.
CREATE TABLE sync_state (
    flow               text PRIMARY KEY,
    watermark_modstamp timestamptz,
    watermark_id       text,
    state              jsonb NOT NULL DEFAULT '{}',
    updated_at         timestamptz
);

-- One row per run of a flow (R1: sync logs visible per run).
CREATE TABLE run_log (
    run_log_id   bigserial PRIMARY KEY,
    flow         text NOT NULL,
    dag_id       text,
    run_id       text,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    outcome      text NOT NULL DEFAULT 'running'
                 CHECK (outcome IN ('running', 'success', 'failed', 'limited', 'partial')),
    fetched      integer NOT NULL DEFAULT 0,
    inserted     integer NOT NULL DEFAULT 0,
    updated      integer NOT NULL DEFAULT 0,
    merged       integer NOT NULL DEFAULT 0,
    skipped      integer NOT NULL DEFAULT 0,
    errors       integer NOT NULL DEFAULT 0,
    deleted      integer NOT NULL DEFAULT 0,
    api_requests integer NOT NULL DEFAULT 0,
    details      jsonb NOT NULL DEFAULT '{}',
    message      text
);
CREATE INDEX run_log_started_at_idx ON run_log (started_at DESC, run_log_id DESC);
CREATE INDEX run_log_flow_started_at_idx ON run_log (flow, started_at DESC, run_log_id DESC);

-- Records a flow could not process; one open row per (flow, record), retried by later runs.
CREATE TABLE sync_error (
    sync_error_id   bigserial PRIMARY KEY,
    flow            text NOT NULL,
    record_id       text NOT NULL,
    reason          text NOT NULL,
    detail          jsonb,
    first_seen      timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen       timestamptz NOT NULL DEFAULT clock_timestamp(),
    retry_count     integer NOT NULL DEFAULT 0,
    retry_requested boolean NOT NULL DEFAULT false,
    resolved_at     timestamptz
);
CREATE UNIQUE INDEX sync_error_open_record_key ON sync_error (flow, record_id) WHERE resolved_at IS NULL;
CREATE INDEX sync_error_open_last_seen_idx ON sync_error (last_seen DESC) WHERE resolved_at IS NULL;

-- One row per Salesforce request, shared by all workers: the API budget (R12).
CREATE TABLE api_ledger (
    api_request_id bigserial PRIMARY KEY,
    budget_key     text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    flow           text,
    method         text,
    endpoint       text,
    status_code    integer
);
CREATE INDEX api_ledger_budget_key_requested_at_idx ON api_ledger (budget_key, requested_at);

-- Per budget: a block Salesforce imposed, and the last Sforce-Limit-Info seen.
CREATE TABLE api_budget_state (
    budget_key    text PRIMARY KEY,
    blocked_since timestamptz,
    blocked_until timestamptz,
    block_message text,
    daily_used    integer,
    daily_max     integer,
    observed_at   timestamptz
);

-- Records whose sync flag (R3) must still be reset in Salesforce; queued in the same
-- transaction as their data so a crash between commit and reset loses nothing.
CREATE TABLE flag_reset_queue (
    flow            text NOT NULL,
    sf_id           text NOT NULL,
    system_modstamp timestamptz,
    failed_reason   text,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow, sf_id)
);

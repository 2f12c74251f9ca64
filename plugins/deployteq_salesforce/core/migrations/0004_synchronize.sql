-- Salesforce Synchronize (R13-R15): what each run of a synchronize step did with each customer.
-- The task's XCom carries only counts and the run key; downstream tasks read their record ids here.

-- One row per run of a synchronize step (a task of a DAG run; a retry continues the same run).
CREATE TABLE synchronize_run (
    run_key     text PRIMARY KEY,
    dag_id      text,
    task_id     text,
    run_id      text,
    sobject     text NOT NULL CHECK (sobject IN ('Lead', 'Contact', 'auto')),
    fields      text[] NOT NULL DEFAULT '{}',
    selection   text,
    attempts    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);

-- One row per run and customer: its exit and why.  'pending' = selected, not (yet) sent.
-- on_limit rows are sent again by the next attempt of the same run; on_success / on_error are final.
CREATE TABLE synchronize_outcome (
    run_key      text NOT NULL REFERENCES synchronize_run (run_key) ON DELETE CASCADE,
    customer_id  bigint NOT NULL,
    exit         text NOT NULL DEFAULT 'pending'
                 CHECK (exit IN ('pending', 'on_success', 'on_error', 'on_limit')),
    sobject      text,           -- the object actually updated (a converted lead's contact: Contact)
    sf_id        text,
    reason       text,
    status_code  text,           -- Salesforce's statusCode, or our own code (MISSING_SALESFORCE_ID, API_BUDGET, ...)
    message      text,           -- Salesforce's message, as it was
    error_fields text[],
    sent_via     text CHECK (sent_via IN ('composite', 'bulk')),
    attempts     integer NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_key, customer_id)
);
CREATE INDEX synchronize_outcome_exit_idx ON synchronize_outcome (run_key, exit, customer_id);
CREATE INDEX synchronize_run_created_at_idx ON synchronize_run (created_at DESC);

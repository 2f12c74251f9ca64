-- Crash safety (a worker killed at any point loses nothing and leaves nothing "running" forever).

-- A run whose worker died is closed as 'crashed' by the next run of its flow.  Its counters are kept
-- up to date with every committed batch; progress_at tells when it last committed.
ALTER TABLE run_log DROP CONSTRAINT IF EXISTS run_log_outcome_check;
ALTER TABLE run_log ADD CONSTRAINT run_log_outcome_check
    CHECK (outcome IN ('running', 'success', 'failed', 'limited', 'partial', 'crashed'));
ALTER TABLE run_log ADD COLUMN progress_at timestamptz;

-- Set right before a composite flag-reset request is sent.  Such records are read again after the
-- reset (by the next run when this one died), so an edit made while the reset was in flight arrives.
ALTER TABLE flag_reset_queue ADD COLUMN reset_requested_at timestamptz;

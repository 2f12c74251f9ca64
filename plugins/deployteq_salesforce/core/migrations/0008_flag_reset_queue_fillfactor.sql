-- The flag-reset queue is written once per record (enqueue), updated once (reset_requested_at, just
-- before the reset is sent: up to 100,000 rows in one statement) and deleted (after the read-again).
-- Room in every page lets that update be HOT (reset_requested_at is in no index): no new entry in the
-- primary key per row, about a third of the statement's time.  The rows live minutes at most, so the
-- emptier pages cost little.  Only a storage parameter: no rewrite, pages written from now on follow it.
ALTER TABLE flag_reset_queue SET (fillfactor = 50);

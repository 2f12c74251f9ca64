-- Every customer of a synchronize run gets one row when the run selects it (pending) and one update when it
-- leaves (on_success, on_error, on_limit).  With "exit" in an index, each such update wrote a new entry in
-- both indexes; without it, and with room in every page, the update stays on its page (HOT) and touches no
-- index.  Measured in the synchronize benchmark at 100,000 customers: the two exit updates took 1.5 s of
-- database time, now 0.9 s; the selection (which also lost its per-row conflict check: select_customers) 1.9 s,
-- now 1.0 s.  The queries by exit (the run's work, counts, the UI's list) read one run through the primary key
-- (run_key, customer_id), which they did for most of their rows anyway.
DROP INDEX synchronize_outcome_exit_idx;
-- Only a storage parameter: no rewrite, pages written from now on follow it.
ALTER TABLE synchronize_outcome SET (fillfactor = 50);

-- The record as Salesforce sent it (read_again_hasher: its read fields except the flag and SystemModstamp, salted
-- with the flow's configuration), kept with its queued flag reset.  The read after a Bulk flag reset returns
-- every reset record again, nearly all unchanged: flows without a source_record hash (object links) drop
-- those by this hash instead of writing every row a second time.  NULL where a flow does not set it.
ALTER TABLE flag_reset_queue ADD COLUMN record_hash bytea;

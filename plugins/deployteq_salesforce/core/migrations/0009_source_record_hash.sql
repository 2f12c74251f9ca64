-- A second hash per Lead/Contact: of the record as Salesforce sent it (its selected fields, before mapping),
-- salted with the mapping.  The read after a flag reset returns every reset record again, nearly all of them
-- unchanged; with this hash they are recognised before they are mapped (half the work of a flagged sync).
-- NULL for rows stored before, and for rows written by runs without a sync flag (nothing compares it there):
-- those records are mapped and compared by values_hash as before.
ALTER TABLE source_record ADD COLUMN record_hash bytea;

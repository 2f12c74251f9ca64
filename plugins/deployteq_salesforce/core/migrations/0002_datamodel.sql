-- Deployteq store, version 2: datamodel tables of object links / webhook receivers (R10).
-- The datamodel tables themselves (dm_*) are created at run time from the webhook definitions
-- (DatamodelStore.ensure_table); this registry remembers which definition each table was built
-- from, so a later definition change can be checked for data loss before it is applied.

CREATE TABLE datamodel_table (
    table_name  text PRIMARY KEY,
    webhook     text NOT NULL,
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- updated_at of datamodel rows: the trigger only fires for real changes (WHEN OLD.* IS DISTINCT FROM NEW.*).
CREATE FUNCTION touch_datamodel_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

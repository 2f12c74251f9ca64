"""Pure parts of the Deployteq store: migration discovery and argument checks (no database)."""

from __future__ import annotations

import pytest

from deployteq_salesforce.core.store import (
    MIGRATIONS_DIR,
    UpsertCounts,
    check_upsert_columns,
    discover_migrations,
    split_run_counts,
    validate_schema_name,
)


def test_packaged_migrations_start_at_version_one():
    migrations = discover_migrations(MIGRATIONS_DIR)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].filename == "0001_initial.sql" and "CREATE TABLE customer" in migrations[0].sql()


def test_migrations_are_ordered_by_version(tmp_path):
    for name in ("0002_second.sql", "0010_tenth.sql", "0001_first.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    for version in range(3, 10):
        (tmp_path / f"{version:04d}_v{version}.sql").write_text("SELECT 1;")
    assert [m.version for m in discover_migrations(tmp_path)] == list(range(1, 11))


def test_misnamed_migration_is_an_error(tmp_path):
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "2_Second.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="2_Second.sql"):
        discover_migrations(tmp_path)


def test_duplicate_migration_version_is_an_error(tmp_path):
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0001_also_first.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="share version 1"):
        discover_migrations(tmp_path)


def test_gap_in_migration_versions_is_an_error(tmp_path):
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0003_third.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"missing: \[2\]"):
        discover_migrations(tmp_path)


def test_checksum_follows_the_content(tmp_path):
    path = tmp_path / "0001_first.sql"
    path.write_text("SELECT 1;")
    (migration,) = discover_migrations(tmp_path)
    before = migration.checksum()
    path.write_text("SELECT 2;")
    assert migration.checksum() != before


def test_update_columns_default_to_every_non_key_column():
    assert check_upsert_columns("t", ["id", "a", "b"], ["id"], None) == ["a", "b"]
    assert check_upsert_columns("t", ["id", "a", "b"], ["id"], ["b"]) == ["b"]
    assert check_upsert_columns("t", ["id"], ["id"], None) == []


@pytest.mark.parametrize(
    ("columns", "keys", "update", "message"),
    [
        ([], ["id"], None, "no columns"),
        (["id", "a", "a"], ["id"], None, r"listed twice: \['a'\]"),
        (["id", "a"], [], None, "key_columns is empty"),
        (["id", "a"], ["nr"], None, r"key columns \['nr'\] are not among"),
        (["id", "a"], ["id"], ["b"], r"update columns \['b'\] are not among"),
        (["id", "a"], ["id"], ["id", "a"], r"key columns \['id'\] cannot also be update columns"),
    ],
)
def test_bad_upsert_columns_are_named(columns, keys, update, message):
    with pytest.raises(ValueError, match=message):
        check_upsert_columns("customer", columns, keys, update)


def test_run_counts_split_into_columns_and_details():
    columns, details = split_run_counts({"fetched": 3, "errors": 0, "flags_reset": 2, "note": "x"})
    assert columns == {"fetched": 3, "errors": 0}
    assert details == {"flags_reset": 2, "note": "x"}


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_run_count_columns_must_be_non_negative_integers(bad):
    with pytest.raises(ValueError, match="'inserted'"):
        split_run_counts({"inserted": bad})


@pytest.mark.parametrize("bad", ["", "   ", None, "x" * 64, "a\x00b"])
def test_unusable_schema_names_are_refused_naming_the_source(bad):
    with pytest.raises(ValueError, match="extra deployteq_schema"):
        validate_schema_name(bad, source="extra deployteq_schema")


def test_upsert_counts_add_up():
    total = UpsertCounts(1, 2, 3) + UpsertCounts(inserted=10)
    assert total == UpsertCounts(inserted=11, updated=2, unchanged=3) and total.written == 13

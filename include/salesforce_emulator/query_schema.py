"""The SOQL module's SchemaProvider over the emulated org's schema (and its records, for subqueries)."""

from __future__ import annotations

from collections.abc import Iterable

from . import schema
from .soql import FieldInfo
from .store import Store


class OrgSchema:
    """Case-insensitive names in, canonical names out (see soql.SchemaProvider)."""

    def __init__(self, store: Store):
        self.store = store

    def sobject_name(self, name: str) -> str | None:
        sdef = schema.sobject(name)
        return sdef.name if sdef else None

    def field(self, sobject: str, name: str) -> FieldInfo | None:
        sdef = schema.sobject(sobject)
        field = sdef.fields_lower.get(name.lower()) if sdef else None
        return FieldInfo(field.name, field.type) if field else None

    def fields(self, sobject: str) -> list[FieldInfo]:
        return [FieldInfo(field.name, field.type) for field in schema.OBJECTS[sobject].fields.values()]

    def relationship(self, sobject: str, name: str) -> tuple[str, str] | None:
        sdef = schema.sobject(sobject)
        return sdef.relationships.get(name.lower()) if sdef else None

    def child_relationship(self, sobject: str, name: str) -> tuple[str, str] | None:
        return schema.CHILD_RELATIONSHIPS.get((sobject.lower(), name.lower()))

    def live_rows(self, sobject: str) -> Iterable[dict]:
        return self.store.rows(sobject, include_deleted=False)

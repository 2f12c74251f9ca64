"""The SOQL module's SchemaProvider over the emulated org's schema."""

from __future__ import annotations

from . import schema
from .soql import FieldInfo


class OrgSchema:
    """Case-insensitive names in, canonical names out (see soql.SchemaProvider)."""

    def sobject_name(self, name: str) -> str | None:
        sdef = schema.sobject(name)
        return sdef.name if sdef else None

    def field(self, sobject: str, name: str) -> FieldInfo | None:
        sdef = schema.sobject(sobject)
        field = sdef.fields_lower.get(name.lower()) if sdef else None
        return FieldInfo(field.name, field.type) if field else None

    def relationship(self, sobject: str, name: str) -> tuple[str, str] | None:
        sdef = schema.sobject(sobject)
        return sdef.relationships.get(name.lower()) if sdef else None

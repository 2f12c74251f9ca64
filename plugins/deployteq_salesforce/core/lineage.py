"""OpenLineage for the flows: what a run read and wrote, the columns involved, and which came from which.

Pure: no Airflow import.  Two steps:

1. A flow's configuration becomes a :class:`FlowLineage` (``customers``, ``object_link``,
   ``contact_moments``, ``synchronize``): the tables and Salesforce objects it reads and writes, their
   columns with types (the configured mapping's Deployteq types, the describe's Salesforce types when
   the run made one) and, per output column, the input columns it comes from with the translation
   applied on the way (``translated: Mr. => De heer``).
2. :func:`to_openlineage` turns that plus the run's ``Written`` list into openlineage-python datasets
   (schema, column lineage, output statistics) and run facets (an ``errorMessage`` for a run that
   ended ``partial`` or ``limited``).  Only that function imports openlineage (lazily): the provider
   works without the OpenLineage provider installed.

Names follow ``core.datasets`` (OpenLineage's naming spec): a Deployteq table is namespace
``postgres://{host}:{port}``, name ``{database}.{schema}.{table}``; the spec defines no Salesforce
scheme, so a Salesforce object is namespace ``salesforce://{instance host}``, name ``{object}`` (the
same authority as the Asset URIs).  Only names, types and mapping values go into facets: never a
connection's login, password or token (the mapping configurations hold none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from deployteq_salesforce.core.datasets import DEPLOYTEQ, SALESFORCE, DeployteqDatabase, SalesforceOrg, Written

# OpenLineage column lineage: transformation types and subtypes (ColumnLineageDatasetFacet 1-2-0)
DIRECT, INDIRECT = "DIRECT", "INDIRECT"
IDENTITY, TRANSFORMATION, JOIN = "IDENTITY", "TRANSFORMATION", "JOIN"

# counts of a Written entry that are rows written into the dataset (deleted rows are not)
ROWS_WRITTEN = ("inserted", "updated", "merged")


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Source:
    """One input column of an output column, and what happens to its value on the way."""

    system: str  # DEPLOYTEQ or SALESFORCE
    dataset: str  # table or Salesforce object
    column: str
    subtype: str = IDENTITY
    description: str | None = None
    type: str = DIRECT


@dataclass(frozen=True)
class Dataset:
    system: str
    name: str
    columns: tuple[Column, ...] = ()
    # output column -> where its value comes from (outputs only)
    lineage: Mapping[str, tuple[Source, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowLineage:
    inputs: tuple[Dataset, ...]
    outputs: tuple[Dataset, ...]

    def output(self, name: str) -> Dataset | None:
        return next((d for d in self.outputs if d.name == name), None)


def _columns(pairs: Iterable[tuple[str, str | None]]) -> tuple[Column, ...]:
    seen: dict[str, Column] = {}
    for name, type_ in pairs:
        seen.setdefault(name, Column(name, type_))
    return tuple(seen.values())


def _value(value: Any) -> str:
    return "(empty)" if value is None or value == "" else str(value)


# ------------------------------------------------------------------------------ translations, described


def describe_mapping(mapping: Any) -> tuple[str, str | None]:
    """(subtype, description) of one mapping row, Salesforce -> Deployteq: translation, then type."""
    parts: list[str] = []
    subtype = IDENTITY
    translations = getattr(mapping, "translations", None) or {}
    if translations:
        subtype = TRANSFORMATION
        pairs = ", ".join(f"{_value(k)} => {_value(v)}" for k, v in translations.items())
        rest = "other values empty" if getattr(mapping, "translate_default", "keep") == "null" else "other values kept"
        parts.append(f"translated: {pairs}; {rest}")
    if mapping.deployteq_type == "optin":
        subtype = TRANSFORMATION
        parts.append("opt-in: 'Y' or true => true, anything else false")
    elif mapping.deployteq_type not in ("text", "email"):
        parts.append(f"as {mapping.deployteq_type}")
    return subtype, "; ".join(parts) or None


InverseTranslations = Callable[[Any], Mapping[Any, Sequence[str]]]


def describe_inverse(mapping: Any, inverse_translations: InverseTranslations) -> tuple[str, str | None]:
    """(subtype, description) of one mapping row sent back, Deployteq -> Salesforce (Synchronize, R13);
    ``inverse_translations`` is what Synchronize itself sends back by (``flows.customers.mapping``)."""
    parts: list[str] = []
    subtype = IDENTITY
    if getattr(mapping, "translations", None):
        subtype = TRANSFORMATION
        back = inverse_translations(mapping)
        pairs = ", ".join(f"{_value(t)} => {_value(s[0])}" for t, s in back.items() if len(s) == 1)
        ambiguous = [t for t, s in back.items() if len(s) > 1]
        parts.append(f"translated back: {pairs}" if pairs else "translated back")
        if ambiguous:
            parts.append(f"not sent (on_error): {', '.join(_value(t) for t in ambiguous)}")
    if mapping.deployteq_type == "optin":
        subtype = TRANSFORMATION
        parts.append("opt-in: true => true or 'Y', false => false or 'N' (by the field's type)")
    return subtype, "; ".join(parts) or None


# ------------------------------------------------------------------------------------------- the flows


def customers(obj: Any, *, field_types: Mapping[str, str] | None = None, table: str = "customer") -> FlowLineage:
    """Lead/Contact -> the customer table (``ConfiguredObject``); ``field_types`` from the run's describe."""
    types = field_types or {}
    sobject = obj.sobject
    read = [*obj.query_fields(), "IsDeleted", *([obj.sync_flag_field] if obj.sync_flag_field else [])]
    lineage: dict[str, tuple[Source, ...]] = {}
    out: list[tuple[str, str | None]] = []
    for mapping in obj.mappings:
        subtype, description = describe_mapping(mapping)
        column = mapping.deployteq_field
        type_ = "text" if column == obj.id_column else mapping.deployteq_type
        out.append((column, type_))
        lineage[column] = (Source(SALESFORCE, sobject, mapping.salesforce_field, subtype, description),)
    if obj.id_column not in lineage:  # the Salesforce Id is always stored (R6)
        out.append((obj.id_column, "text"))
        lineage[obj.id_column] = (Source(SALESFORCE, sobject, "Id"),)
    return FlowLineage(
        inputs=(Dataset(SALESFORCE, sobject, _columns((f, types.get(f)) for f in dict.fromkeys(read))),),
        outputs=(Dataset(DEPLOYTEQ, table, _columns(out), lineage),),
    )


def object_link(link: Any, webhook: Any, *, field_types: Mapping[str, str] | None = None,
                reconcile: bool = False) -> FlowLineage:
    """An object link (``ObjectLink`` + its ``Webhook``) -> its datamodel table; ``reconcile``: the Id
    reconciliation, which only reads Ids and deletes rows (no column lineage)."""
    types = field_types or {}
    table = webhook.datamodel
    out_columns = _columns([("deployteq_id", "bigint"), *((f.column, f.type) for f in webhook.fields),
                            *([("customer_id", "bigint")] if webhook.customer_relation else [])])
    if reconcile:
        return FlowLineage(
            inputs=(Dataset(SALESFORCE, link.sobject, (Column("Id", types.get("Id", "id")),)),),
            outputs=(Dataset(DEPLOYTEQ, table, out_columns),),
        )
    read = [*(f.json_field for f in webhook.fields), "Id", "IsDeleted",
            *([link.sync_flag_field] if link.sync_flag_field else [])]
    lineage: dict[str, tuple[Source, ...]] = {
        f.column: (Source(SALESFORCE, link.sobject, f.json_field, IDENTITY,
                          None if f.type == "text" else f"as {f.type}"),)
        for f in webhook.fields
    }
    inputs = [Dataset(SALESFORCE, link.sobject, _columns((f, types.get(f)) for f in dict.fromkeys(read)))]
    if webhook.customer_relation:
        matched = ", ".join(f"{r.column} = customer.{r.customer_field}" for r in webhook.customer_relation)
        lineage["customer_id"] = (
            Source(DEPLOYTEQ, "customer", "customer_id", IDENTITY, f"the customer where {matched} (first match)"),
            *(Source(DEPLOYTEQ, "customer", r.customer_field, JOIN, None, INDIRECT) for r in webhook.customer_relation),
        )
        inputs.append(Dataset(DEPLOYTEQ, "customer", _columns(
            [("customer_id", "bigint"), *((r.customer_field, "text") for r in webhook.customer_relation)])))
    return FlowLineage(inputs=tuple(inputs), outputs=(Dataset(DEPLOYTEQ, table, out_columns, lineage),))


# contact_moment columns (migration 0001) and, per Salesforce field of the payload, the columns it is
# built from (``contact_moments.logic.build_payload``; a test keeps the two in step)
CONTACT_MOMENT_COLUMNS = (
    ("contact_moment_id", "bigint"), ("customer_id", "bigint"), ("mailing_id", "bigint"), ("mailing_name", "text"),
    ("subject", "text"), ("sent_at", "timestamptz"), ("opened_first_at", "timestamptz"), ("open_count", "integer"),
    ("clicked_first_at", "timestamptz"), ("click_count", "integer"), ("bounced_at", "timestamptz"),
    ("bounce_type", "text"), ("online_version_url", "text"), ("changed_at", "timestamptz"),
)
CONTACT_MOMENT_PAYLOAD: dict[str, tuple[tuple[str, ...], str, str | None]] = {
    # Salesforce field: (contact_moment columns, subtype, description)
    "Deployteq_Id__c": (("contact_moment_id",), IDENTITY, "as text (the upsert's external id)"),
    "Name": (("mailing_name", "subject", "sent_at"), TRANSFORMATION,
             "mailing name (else subject, else 'E-mail') and the day sent, at most 80 characters"),
    "Mailing_Name__c": (("mailing_name",), IDENTITY, "trimmed, at most 255 characters"),
    "Subject__c": (("subject",), IDENTITY, "trimmed, at most 255 characters"),
    "Sent_Date__c": (("sent_at",), IDENTITY, None),
    "Opened__c": (("open_count", "opened_first_at"), TRANSFORMATION, "open_count > 0 or opened_first_at set"),
    "First_Opened_Date__c": (("opened_first_at",), IDENTITY, None),
    "Open_Count__c": (("open_count",), IDENTITY, None),
    "Clicked__c": (("click_count", "clicked_first_at"), TRANSFORMATION, "click_count > 0 or clicked_first_at set"),
    "First_Clicked_Date__c": (("clicked_first_at",), IDENTITY, None),
    "Click_Count__c": (("click_count",), IDENTITY, None),
    "Bounced__c": (("bounced_at", "bounce_type"), TRANSFORMATION, "bounced_at or bounce_type set"),
    "Bounce_Date__c": (("bounced_at",), IDENTITY, None),
    "Bounce_Type__c": (("bounce_type",), IDENTITY, None),
    "Online_Version_URL__c": (("online_version_url",), IDENTITY, "trimmed"),
}
CONTACT_MOMENT_TYPES = {
    "Deployteq_Id__c": "string", "Name": "string", "Mailing_Name__c": "string", "Subject__c": "string",
    "Sent_Date__c": "datetime", "Opened__c": "boolean", "First_Opened_Date__c": "datetime", "Open_Count__c": "double",
    "Clicked__c": "boolean", "First_Clicked_Date__c": "datetime", "Click_Count__c": "double", "Bounced__c": "boolean",
    "Bounce_Date__c": "datetime", "Bounce_Type__c": "string", "Online_Version_URL__c": "url",
}


def contact_moments(parent_fields: Mapping[str, str]) -> FlowLineage:
    """Deployteq contact moments -> ``ClangLead/ContactContactMoment__c`` (``parent_fields``: object ->
    its lookup field, ``contact_moments.logic.PARENT_FIELDS``); the payload is fixed, not configured."""
    outputs = []
    id_column = {"Lead__c": "sf_lead_id", "Contact__c": "sf_contact_id"}
    for sobject, parent in parent_fields.items():
        lineage = {
            sf_field: tuple(Source(DEPLOYTEQ, "contact_moment", c, subtype, description) for c in columns)
            for sf_field, (columns, subtype, description) in CONTACT_MOMENT_PAYLOAD.items()
        }
        lineage[parent] = (Source(DEPLOYTEQ, "customer", id_column.get(parent, "customer_id"), IDENTITY,
                                  "the moment's customer's Salesforce Id"),)
        columns = _columns([(parent, "reference"), *CONTACT_MOMENT_TYPES.items()])
        outputs.append(Dataset(SALESFORCE, sobject, columns, lineage))
    return FlowLineage(
        inputs=(
            Dataset(DEPLOYTEQ, "contact_moment", _columns(CONTACT_MOMENT_COLUMNS)),
            Dataset(DEPLOYTEQ, "customer", _columns([("customer_id", "bigint"), ("sf_lead_id", "text"),
                                                     ("sf_contact_id", "text")])),
        ),
        outputs=tuple(outputs),
    )


def synchronize(rows: Mapping[str, Sequence[Any]], objects: Mapping[str, Any], *,
                inverse_translations: InverseTranslations,
                field_types: Mapping[str, Mapping[str, str]] | None = None,
                source_table: str | None = None, table: str = "customer") -> FlowLineage:
    """Deployteq customers -> Lead/Contact (Salesforce Synchronize): ``rows`` is the run's field plan
    (object -> the mapping rows sent), ``objects`` the configured objects (their Id columns)."""
    types = field_types or {}
    outputs = []
    read: list[tuple[str, str | None]] = [("customer_id", "bigint")]
    for sobject, mappings in rows.items():
        id_column = objects[sobject].id_column if sobject in objects else f"sf_{sobject.lower()}_id"
        read.append((id_column, "text"))
        lineage: dict[str, tuple[Source, ...]] = {}
        for mapping in mappings:
            subtype, description = describe_inverse(mapping, inverse_translations)
            read.append((mapping.deployteq_field, mapping.deployteq_type))
            lineage[mapping.salesforce_field] = (Source(DEPLOYTEQ, table, mapping.deployteq_field, subtype, description),)
        object_types = types.get(sobject, {})
        columns = _columns([("Id", object_types.get("Id", "id")),
                            *((m.salesforce_field, object_types.get(m.salesforce_field)) for m in mappings)])
        lineage["Id"] = (Source(DEPLOYTEQ, table, id_column, IDENTITY, "the record updated (matched on Id)"),)
        outputs.append(Dataset(SALESFORCE, sobject, columns, lineage))
    inputs = [Dataset(DEPLOYTEQ, table, _columns(read))]
    if source_table:
        inputs.append(Dataset(DEPLOYTEQ, source_table, (Column("customer_id", "bigint"),)))
    return FlowLineage(inputs=tuple(inputs), outputs=tuple(outputs))


# ------------------------------------------------------------------------------------------ to OpenLineage


@dataclass(frozen=True)
class Places:
    """Where the datasets live: the Deployteq database and the Salesforce org (None: not known)."""

    database: DeployteqDatabase
    org: SalesforceOrg | None

    def name(self, system: str, dataset: str) -> tuple[str, str] | None:
        """(namespace, name); a ``schema.table`` Deployteq name keeps its own schema."""
        if system == DEPLOYTEQ:
            database = self.database
            if "." in dataset:
                schema, dataset = dataset.split(".", 1)
                database = DeployteqDatabase(database.host, database.port, database.database, schema)
            named = database.table(dataset)
        elif self.org is not None:
            named = self.org.sobject(dataset)
        else:
            return None
        return named.namespace, named.name


def rows_written(written: Written | None) -> int | None:
    if written is None:
        return None
    return sum(written.counts.get(name, 0) for name in ROWS_WRITTEN)


def problem_summary(outcome: str | None, counts: Mapping[str, Any], message: str | None = None) -> str | None:
    """The errorMessage of a run that did not do everything: some records failed (``partial``) or the
    API budget stopped it (``limited``); None for a clean run."""
    errors = int(counts.get("errors") or 0)
    limited = int(counts.get("on_limit") or 0)
    if outcome not in ("partial", "limited") and not errors and not limited:
        return None
    parts = []
    if errors:
        parts.append(f"{errors} record(s) failed")
    if outcome == "limited" or limited:
        parts.append(f"stopped by the Salesforce API budget{f' ({limited} record(s) not sent)' if limited else ''}"
                     + (f": {message}" if message else "; the next run continues"))
    return f"run ended {outcome}: " + "; ".join(parts)


def to_openlineage(flow: FlowLineage, places: Places, written: Sequence[Written] = (), *,
                   problem: str | None = None) -> tuple[list, list, dict]:
    """(inputs, outputs, run_facets) as openlineage-python objects; datasets on a Salesforce org that
    is not known are left out (with the column lineage that points at them)."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        column_lineage_dataset,
        error_message_run,
        output_statistics_output_dataset,
        schema_dataset,
    )

    def schema(dataset: Dataset):
        return schema_dataset.SchemaDatasetFacet(fields=[
            schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description)
            for c in dataset.columns
        ])

    def column_lineage(dataset: Dataset):
        fields = {}
        for column, sources in dataset.lineage.items():
            inputs = []
            for source in sources:
                named = places.name(source.system, source.dataset)
                if named is None:
                    continue
                inputs.append(column_lineage_dataset.InputField(
                    namespace=named[0], name=named[1], field=source.column,
                    transformations=[column_lineage_dataset.Transformation(
                        type=source.type, subtype=source.subtype, description=source.description, masking=False,
                    )],
                ))
            if inputs:
                fields[column] = column_lineage_dataset.Fields(inputFields=inputs)
        return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields) if fields else None

    by_name = {(w.system, w.name): w for w in written}
    inputs, outputs = [], []
    for dataset in flow.inputs:
        named = places.name(dataset.system, dataset.name)
        if named is not None:
            inputs.append(InputDataset(namespace=named[0], name=named[1], facets={"schema": schema(dataset)}))
    for dataset in flow.outputs:
        named = places.name(dataset.system, dataset.name)
        if named is None:
            continue
        facets: dict[str, Any] = {"schema": schema(dataset)}
        lineage = column_lineage(dataset)
        if lineage is not None:
            facets["columnLineage"] = lineage
        output_facets = {}
        rows = rows_written(by_name.get((dataset.system, dataset.name)))
        if rows is not None:
            output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=rows)
        outputs.append(OutputDataset(namespace=named[0], name=named[1], facets=facets, outputFacets=output_facets))
    run_facets: dict[str, Any] = {}
    if problem:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=problem, programmingLanguage="python")
    return inputs, outputs, run_facets

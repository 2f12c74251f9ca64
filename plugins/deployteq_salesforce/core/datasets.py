"""What a flow wrote, and how the places it wrote to are named for Airflow Assets and OpenLineage.

Pure: the operators fill in the connection details (host, database, schema, Salesforce instance).
Names follow the conventions Airflow and OpenLineage already use for these systems:

- a Deployteq table: Asset URI ``postgres://{host}:{port}/{database}/{schema}/{table}`` (the stock
  PostgreSQL provider's scheme), OpenLineage namespace ``postgres://{host}:{port}``, name
  ``{database}.{schema}.{table}``;
- a Salesforce object: Asset URI ``salesforce://{instance host}/{object}``, OpenLineage namespace
  ``salesforce://{instance host}``, name ``{object}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_POSTGRES_PORT = 5432


@dataclass(frozen=True)
class DatasetName:
    """One table or object, named in both conventions."""

    uri: str  # the Airflow Asset URI
    namespace: str  # the OpenLineage dataset namespace
    name: str  # the OpenLineage dataset name


@dataclass(frozen=True)
class DeployteqDatabase:
    """Where the Deployteq tables live."""

    host: str
    port: int
    database: str
    schema: str

    @classmethod
    def of(cls, host: str | None, port: int | None, database: str | None, schema: str) -> "DeployteqDatabase":
        # a socket directory as host (or none) is this machine
        plain_host = "localhost" if not host or host.startswith("/") else host.lower()
        return cls(plain_host, port or DEFAULT_POSTGRES_PORT, database or "postgres", schema)

    def table(self, table: str) -> DatasetName:
        authority = f"{self.host}:{self.port}"
        return DatasetName(
            uri=f"postgres://{authority}/{self.database}/{self.schema}/{table}",
            namespace=f"postgres://{authority}",
            name=f"{self.database}.{self.schema}.{table}",
        )


@dataclass(frozen=True)
class SalesforceOrg:
    """The Salesforce instance a connection logged in to (host of the instance URL)."""

    instance: str

    @classmethod
    def of(cls, instance: str) -> "SalesforceOrg":
        host = instance.split("://", 1)[-1].split("/", 1)[0].lower()
        if not host:
            raise ValueError("the Salesforce instance host is empty")
        return cls(host)

    def sobject(self, sobject: str) -> DatasetName:
        return DatasetName(
            uri=f"salesforce://{self.instance}/{sobject}", namespace=f"salesforce://{self.instance}", name=sobject,
        )


DEPLOYTEQ = "deployteq"
SALESFORCE = "salesforce"


@dataclass
class Written:
    """What one run changed in one table (``system`` deployteq) or Salesforce object (``system`` salesforce)."""

    system: str
    name: str  # table or Salesforce object
    counts: dict[str, int] = field(default_factory=dict)  # inserted, updated, merged, deleted, ...
    watermark: str | None = None  # ISO time in Salesforce up to which an inbound run has read

    @property
    def changed(self) -> bool:
        """A run that changed nothing here emits nothing (no empty downstream runs)."""
        return any(self.counts.values())

    def event_extra(self) -> dict:
        """The counts that are not 0 (and the watermark) as an Asset event's ``extra``."""
        counts = {name: number for name, number in self.counts.items() if number}
        return {**counts, **({"watermark": self.watermark} if self.watermark else {})}

    def add(self, **counts: int) -> None:
        for name, number in counts.items():
            self.counts[name] = self.counts.get(name, 0) + number

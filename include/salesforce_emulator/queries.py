"""REST query/queryAll: each query is evaluated once and paged from a server-side cursor."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .ids import make_id
from .query_schema import OrgSchema
from .soql import CompiledQuery, SoqlError, compile_query
from .store import RequestError, Store

DEFAULT_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000
# Since API 56.0 Salesforce keeps query cursors for 2 days and does not limit how many are open; the
# emulator also drops the oldest beyond a generous count, only to bound its memory.
CURSOR_LIFETIME_SECONDS = 2 * 86_400
MAX_OPEN_CURSORS = 200


@dataclass
class Cursor:
    compiled: CompiledQuery
    records: list[dict]
    batch_size: int
    created: float  # emulator clock


class QueryEngine:
    def __init__(self, store: Store):
        self.store = store
        self.schema = OrgSchema(store)
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self._counter = 0

    def compile(self, soql: str) -> CompiledQuery:
        try:
            return compile_query(soql, self.schema)
        except SoqlError as error:
            raise RequestError(400, error.error_code, str(error)) from None

    def start(self, soql: str, *, include_deleted: bool, batch_size: int | None, api_version: str,
              endpoint: str) -> dict:
        compiled = self.compile(soql)
        now = self.store.clock.now_datetime()  # TODAY etc. on the emulator clock
        matched = compiled.run(self.store.rows(compiled.sobject, include_deleted), self.store.lookup, now=now)
        if compiled.is_count:
            return {"totalSize": len(matched), "done": True, "records": []}
        if compiled.is_aggregate:  # AggregateResult rows come in one answer (no query locator)
            rows = compiled.aggregate(matched, self.store.lookup, now=now)
            return {"totalSize": len(rows), "done": True, "records": rows}
        cursor = Cursor(compiled, matched, batch_size or DEFAULT_BATCH_SIZE, self.store.clock.now())
        self._counter += 1
        locator = make_id("01g", self._counter)
        self.cursors[locator] = cursor
        self._drop_old_cursors(cursor.created)
        return self._page(locator, cursor, 0, cursor.batch_size, api_version, endpoint)

    def more(self, locator_and_offset: str, *, batch_size: int | None, api_version: str, endpoint: str) -> dict:
        locator, _, offset_text = locator_and_offset.rpartition("-")
        self._drop_old_cursors(self.store.clock.now())
        cursor = self.cursors.get(locator)
        if cursor is None or not offset_text.isdigit():
            raise RequestError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        self.cursors.move_to_end(locator)
        return self._page(locator, cursor, int(offset_text), batch_size or cursor.batch_size, api_version, endpoint)

    def _drop_old_cursors(self, now: float) -> None:
        """Expired cursors go, and beyond MAX_OPEN_CURSORS the least recently used ones."""
        for locator in [key for key, cursor in self.cursors.items() if now - cursor.created > CURSOR_LIFETIME_SECONDS]:
            del self.cursors[locator]
        while len(self.cursors) > MAX_OPEN_CURSORS:
            self.cursors.popitem(last=False)

    def _page(self, locator: str, cursor: Cursor, offset: int, size: int, api_version: str, endpoint: str) -> dict:
        total = len(cursor.records)
        end = min(offset + size, total)
        project, lookup = cursor.compiled.project, self.store.lookup
        records = [project(record, lookup, api_version) for record in cursor.records[offset:end]]
        page: dict = {"totalSize": total, "done": end >= total}
        if end < total:
            page["nextRecordsUrl"] = f"/services/data/v{api_version}/{endpoint}/{locator}-{end}"
        page["records"] = records
        return page

    def clear(self) -> None:
        self.cursors.clear()


def batch_size_from(header: str | None) -> int | None:
    """``Sforce-Query-Options: batchSize=N`` clamped to Salesforce's 200..2000."""
    if not header:
        return None
    for option in header.split(","):
        name, _, value = option.partition("=")
        if name.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(MIN_BATCH_SIZE, min(MAX_BATCH_SIZE, int(value.strip())))
    return None

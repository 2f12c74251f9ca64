"""SOQL for the Salesforce emulator: parse once, resolve names against a schema, evaluate as closures.

``compile_query(soql, schema)`` returns a ``CompiledQuery`` whose ``run`` filters, orders and pages
stored records and whose ``project`` shapes one record as the REST API returns it.

Stored records hold wire-format values (str for text/ids/picklists, ``2024-01-01T00:00:00.000+0000``
for datetimes, ``2024-01-01`` for dates, bool, int/float, None) under canonical field names.

Semantics follow Salesforce: text compares case-insensitively (``=``, ``LIKE``, ordering), ids
exactly (a 15-character literal matches its 18-character form), datetimes as instants, ``!=`` and
``NOT IN`` also match null values, ``ORDER BY`` defaults to ASC NULLS FIRST / DESC NULLS LAST.
Date literals (TODAY, LAST_N_DAYS:n, ...) use UTC days and weeks starting on Sunday.

Subqueries read the other objects' live (not deleted) records through the schema provider's
``live_rows`` when the query runs: a semi-/anti-join (``Id [NOT] IN (SELECT LeadId FROM ...)``) builds
its id set once per run, and parent-to-child subqueries (``(SELECT ... FROM Contacts)``) build one
parent id -> children index per run, which ``run`` attaches to (copies of) the parent records.
``FIELDS(ALL|STANDARD|CUSTOM)`` expands to the object's fields.

Aggregate queries give their AggregateResult rows through ``CompiledQuery.aggregate``; HAVING is compiled like
WHERE, over one record per group that also holds the group's aggregates (``CompiledQuery._group_record``); ORDER BY
may name those aggregates too.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, NamedTuple, Protocol

from . import ids
from .soql_lexer import (
    DATE,
    DATETIME,
    IDENT,
    INVALID_FIELD,
    INVALID_QUERY_FILTER_OPERATOR,
    INVALID_TYPE,
    MALFORMED_QUERY,
    NUMBER,
    NUMBER_OUTSIDE_VALID_RANGE,
    STRING,
    SoqlError,
    positioned_error,
)
from .soql_parser import (
    BoolOp,
    ChildQuery,
    Comparison,
    AggregateItem,
    FieldsItem,
    Literal,
    Not,
    OrderItem,
    Path,
    QueryAst,
    SemiJoin,
    parse,
)

__all__ = ["SoqlError", "FieldInfo", "SchemaProvider", "CompiledQuery", "compile_query", "MAX_OFFSET"]

MAX_OFFSET = 2000
Lookup = Callable[[str, str], "dict | None"]


class FieldInfo(NamedTuple):
    name: str  # canonical name
    type: str  # Salesforce type: id, string, email, boolean, datetime, date, double, int, ...


class SchemaProvider(Protocol):
    def sobject_name(self, name: str) -> str | None: ...

    def field(self, sobject: str, name: str) -> FieldInfo | None: ...

    def fields(self, sobject: str) -> list[FieldInfo]: ...  # all of the object's fields, for FIELDS()

    def relationship(self, sobject: str, name: str) -> tuple[str, str] | None: ...  # (foreign key, parent)

    def child_relationship(self, sobject: str, name: str) -> tuple[str, str] | None: ...  # (child, foreign key)

    def live_rows(self, sobject: str) -> Iterable[dict]: ...  # stored records not deleted, for subqueries


# ---------------------------------------------------------------------------------------------
# Value domains: every field type maps to one, which decides literal checks and comparisons.
TEXT, ID, DATETIME_KIND, DATE_KIND, BOOLEAN, NUMBER_KIND = "text", "id", "datetime", "date", "boolean", "number"
_KIND_OF_TYPE = {
    "id": ID,
    "reference": ID,
    "datetime": DATETIME_KIND,
    "date": DATE_KIND,
    "boolean": BOOLEAN,
    "double": NUMBER_KIND,
    "int": NUMBER_KIND,
    "long": NUMBER_KIND,
    "currency": NUMBER_KIND,
    "percent": NUMBER_KIND,
}
# The type name Salesforce puts in "must be of type X" messages
_TYPE_WORD = {ID: "id", DATETIME_KIND: "dateTime", DATE_KIND: "date", BOOLEAN: "boolean", TEXT: "string"}
_NUMBER_TYPE_WORD = {"int": "integer", "long": "long"}

_NO_SUCH_COLUMN = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
_UNKNOWN_OBJECT = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append "
    "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
)
_UNKNOWN_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom relationship, "
    "be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)
_UNKNOWN_CHILD_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a custom "
    "relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or "
    "the describe call for the appropriate names."
)
_NESTED_CHILD_QUERY = (
    "SOQL statements cannot query aggregate relationships more than 1 level away from the root entity object."
)
_FIELDS_NEEDS_LIMIT = "The SOQL FIELDS function must have a LIMIT of at most 200"
MAX_FIELDS_LIMIT = 200
MAX_SEMI_JOINS = 2


def kind_of(field_type: str) -> str:
    return _KIND_OF_TYPE.get(field_type.lower(), TEXT)


def canonical_datetime(value: str) -> str:
    """Any ISO-8601 datetime with a zone as Salesforce's wire form in UTC: ``2024-01-01T00:00:00.000+0000``.

    Strings in that form sort in time order, so comparisons never need datetime objects.
    """
    if len(value) == 28 and value.endswith("+0000") and value[19] == ".":
        return value
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _datetime_start_of(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000+0000"


def _normalizer(kind: str) -> Callable[[object], object]:
    """Record value -> comparable value in the field's domain (None stays None)."""
    if kind == TEXT:
        return lambda v: v.lower() if v else None  # Salesforce stores empty text as null
    if kind == ID:
        return lambda v: v or None
    if kind == DATETIME_KIND:
        return lambda v: canonical_datetime(v) if v else None
    if kind == DATE_KIND:
        return lambda v: v[:10] if v else None
    if kind == BOOLEAN:
        return bool  # a checkbox is never null; a missing value reads as false
    return lambda v: v


# ---------------------------------------------------------------------------------------------
# Resolved field references


@dataclass(frozen=True)
class _Hop:
    relationship: str  # canonical relationship name, e.g. "Account"
    foreign_key: str  # e.g. "AccountId"
    target: str  # e.g. "Account"


@dataclass(frozen=True)
class _FieldRef:
    hops: tuple[_Hop, ...]
    field: FieldInfo
    pos: int

    @property
    def canonical_path(self) -> tuple[str, ...]:
        return tuple(h.relationship for h in self.hops) + (self.field.name,)

    @property
    def kind(self) -> str:
        return kind_of(self.field.type)

    def getter(self, lookup: Lookup) -> Callable[[dict], object]:
        """Raw (wire) value of this field for a base record; follows relationships through ``lookup``."""
        name = self.field.name
        if not self.hops:
            return lambda record: record.get(name)
        hops = self.hops

        def get(record: dict) -> object:
            for hop in hops:
                key = record.get(hop.foreign_key)
                if not key:
                    return None
                record = lookup(hop.target, key)
                if record is None:
                    return None
            return record.get(name)

        return get


def _canonical_relationship_name(foreign_key: str, written: str) -> str:
    if foreign_key.endswith("__c"):
        return foreign_key[:-3] + "__r"
    if foreign_key.endswith("Id") and foreign_key[:-2].lower() == written.lower():
        return foreign_key[:-2]
    return written


# ---------------------------------------------------------------------------------------------
# Predicates: each AST condition compiles to ``bind(env) -> predicate(record) -> bool``, so the query
# is analysed once and the per-run things (lookup, clock) are bound once per run.


@dataclass(frozen=True)
class _Env:
    lookup: Lookup
    today: date


_Binder = Callable[[_Env], Callable[[dict], bool]]

_ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _date_literal_range(literal: Literal, today: date) -> tuple[date, date]:
    """[first day, day after the last) of a date literal such as THIS_MONTH or LAST_N_DAYS:7."""
    name, n = literal.date_literal, literal.n or 0
    day = timedelta(days=1)
    week_start = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
    month_start = today.replace(day=1)

    def add_months(start: date, months: int) -> date:
        index = start.year * 12 + start.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)

    ranges = {
        "YESTERDAY": (today - day, today),
        "TODAY": (today, today + day),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week_start - 7 * day, week_start),
        "THIS_WEEK": (week_start, week_start + 7 * day),
        "NEXT_WEEK": (week_start + 7 * day, week_start + 14 * day),
        "LAST_MONTH": (add_months(month_start, -1), month_start),
        "THIS_MONTH": (month_start, add_months(month_start, 1)),
        "NEXT_MONTH": (add_months(month_start, 1), add_months(month_start, 2)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
        "THIS_YEAR": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_N_DAYS": (today - n * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
    }
    return ranges[name]


# What a compiler compiles: the query itself, a parent-to-child subquery, or the inner query of a semi-join
_ROOT, _CHILD, _SEMI_JOIN = "root", "child", "semi-join"
# Where a condition sits in its WHERE: semi-joins may only be the whole condition or an operand of a top-level AND
_WHOLE, _CONJUNCT, _DISJUNCT, _NESTED = "whole", "conjunct", "disjunct", "nested"


@dataclass
class _SelectList:
    """The resolved SELECT list."""

    outputs: list  # _FieldRef | _ChildQuery, in SELECT order
    fields: list[tuple[_FieldRef, str]]  # the plain fields with their names as written (for error messages)
    aggregates: list[tuple[str, str, _FieldRef | None]]  # (key, function, field)
    is_count: bool = False
    unnamed: int = 0  # aggregates without alias so far: they are expr0, expr1, ...


class _Compiler:
    def __init__(self, query: str, token_starts: list[int], schema: SchemaProvider, ast: QueryAst, *,
                 api_version: str, role: str = _ROOT):
        self.query = query
        self.token_starts = token_starts
        self.schema = schema
        self.ast = ast
        self.api_version = api_version
        self.role = role
        self.sobject = ""
        self.semi_joins = 0

    def error(self, code: str, message: str, pos: int) -> SoqlError:
        return positioned_error(code, message, self.query, pos, self.token_starts)

    def subquery_compiler(self, ast: QueryAst, role: str) -> _Compiler:
        return _Compiler(self.query, self.token_starts, self.schema, ast, api_version=self.api_version, role=role)

    # -- names ---------------------------------------------------------------------------------
    def resolve_object(self) -> str:
        path = self.ast.sobject
        name = self.schema.sobject_name(path.names[0])
        if name is None:
            raise self.error(INVALID_TYPE, _UNKNOWN_OBJECT.format(name=path.names[0]), path.pos)
        self.sobject = name
        return name

    def names_queried_object(self, written: str) -> bool:
        """Whether a path's first name is the queried object's name or alias ("Lead.Email", "l.Email")."""
        first = written.lower()
        return first == self.sobject.lower() or (self.ast.alias is not None and first == self.ast.alias.lower())

    def resolve(self, path: Path) -> _FieldRef:
        names = list(path.names)
        if len(names) > 1 and self.names_queried_object(names[0]):
            if self.schema.relationship(self.sobject, names[0]) is None:
                names = names[1:]
        current = self.sobject
        hops: list[_Hop] = []
        for written in names[:-1]:
            relationship = self.schema.relationship(current, written)
            if relationship is None:
                raise self.error(INVALID_FIELD, _UNKNOWN_RELATIONSHIP.format(name=written), path.pos)
            foreign_key, target = relationship
            hops.append(_Hop(_canonical_relationship_name(foreign_key, written), foreign_key, target))
            current = target
        info = self.schema.field(current, names[-1])
        if info is None:
            raise self.error(INVALID_FIELD, _NO_SUCH_COLUMN.format(name=names[-1], entity=current), path.pos)
        return _FieldRef(tuple(hops), info, path.pos)

    # -- the whole query -----------------------------------------------------------------------
    def compile(self) -> CompiledQuery:
        """The query over ``self.sobject`` (already resolved)."""
        ast = self.ast
        select = self.select_list()
        group_by = [self.resolve(path) for path in ast.group_by]
        if group_by and self.role == _CHILD:
            raise self.error(MALFORMED_QUERY, "only root queries support aggregate expressions", ast.group_by[0].pos)
        if select.is_count and group_by:
            raise self.error(MALFORMED_QUERY, "COUNT() and GROUP BY may not be used together", ast.group_by[0].pos)
        if select.aggregates or group_by:
            self.check_grouped(select, group_by)

        where = self.condition(ast.where) if ast.where is not None else None
        # HAVING and ORDER BY may name aggregates of the group; they are computed once per group
        groups = _GroupCompiler(self, group_by) if (select.aggregates or group_by) else None
        having = groups.condition(ast.having) if ast.having is not None else None  # HAVING comes with GROUP BY
        order_by = [self.order_key(item, groups) for item in ast.order_by]
        for item, key in zip(ast.order_by, order_by):
            if groups is not None and isinstance(item.path, Path) and key.ref.canonical_path not in groups.grouped:
                raise self.error(MALFORMED_QUERY, "Ordered field must be grouped or aggregated: "
                                 + ".".join(item.path.names), item.path.pos)

        offset = int(ast.offset.text) if ast.offset is not None else None
        if offset is not None and offset > MAX_OFFSET:
            raise SoqlError(NUMBER_OUTSIDE_VALID_RANGE,
                            f"Maximum SOQL offset allowed for apiVersion {self.api_version} is {MAX_OFFSET}")
        return CompiledQuery(
            sobject=self.sobject,
            is_count=select.is_count,
            limit=int(ast.limit.text) if ast.limit is not None else None,
            offset=offset,
            outputs=select.outputs,
            where=where,
            order_by=order_by,
            aggregates=select.aggregates,
            group_by=group_by,
            having=having,
            group_aggregates=[(key, function, ref) for key, (function, ref) in groups.aggregates.items()]
            if groups is not None else [],
        )

    def select_list(self) -> _SelectList:
        select = _SelectList([], [], [])
        seen: set[tuple[str, ...]] = set()
        for item in self.ast.items:
            if isinstance(item, AggregateItem):
                self.add_aggregate(select, item)
                continue
            if isinstance(item, ChildQuery):
                select.outputs.append(self.child_query(item))
                continue
            for ref, written in self.selected_fields(item):
                if ref.canonical_path in seen:
                    dotted = ".".join(ref.canonical_path)
                    raise self.error(INVALID_FIELD, f"duplicate field selected: {dotted}", ref.pos)
                seen.add(ref.canonical_path)
                select.fields.append((ref, written))
                select.outputs.append(ref)
        return select

    def add_aggregate(self, select: _SelectList, item: AggregateItem) -> None:
        if self.role == _CHILD:
            raise self.error(MALFORMED_QUERY, "only root queries support aggregate expressions", item.pos)
        if item.path is None:
            select.is_count = True
            return
        ref = self.resolve(item.path)
        self.check_aggregate(item, ref)
        key = item.alias
        if key is None:  # unaliased aggregates are expr0, expr1, ... in SELECT order
            key, select.unnamed = f"expr{select.unnamed}", select.unnamed + 1
        select.aggregates.append((key, item.function, ref))

    def selected_fields(self, item: Path | FieldsItem) -> list[tuple[_FieldRef, str]]:
        """The fields a SELECT item stands for, each with its name as written."""
        if isinstance(item, Path):
            return [(self.resolve(item), ".".join(item.names))]
        limit = self.ast.limit
        if item.group != "STANDARD" and (limit is None or int(limit.text) > MAX_FIELDS_LIMIT):
            raise SoqlError(MALFORMED_QUERY, _FIELDS_NEEDS_LIMIT)
        return [
            (_FieldRef((), info, item.pos), info.name)
            for info in self.schema.fields(self.sobject)
            if item.group == "ALL" or (item.group == "CUSTOM") == info.name.endswith("__c")
        ]

    def check_grouped(self, select: _SelectList, group_by: list[_FieldRef]) -> None:
        """With aggregates or GROUP BY every plain SELECT item must be grouped."""
        grouped = {ref.canonical_path for ref in group_by}
        for ref, written in select.fields:
            if ref.canonical_path not in grouped:
                raise self.error(MALFORMED_QUERY, f"Field must be grouped or aggregated: {written}", ref.pos)
        for child in select.outputs:
            if isinstance(child, _ChildQuery):
                raise self.error(MALFORMED_QUERY, f"Field must be grouped or aggregated: {child.key}", child.pos)

    def order_key(self, item: OrderItem, groups: _GroupCompiler | None) -> _OrderKey:
        if not isinstance(item.path, AggregateItem):
            return _OrderKey(self.resolve(item.path), item.descending, item.nulls_last)
        if groups is None:
            raise self.error(MALFORMED_QUERY, "Aggregate functions in ORDER BY need an aggregate query (GROUP BY)",
                             item.path.pos)
        return _OrderKey(groups.aggregate_field(item.path), item.descending, item.nulls_last)

    def child_query(self, item: ChildQuery) -> _ChildQuery:
        """A parent-to-child subquery: FROM names a child relationship of the queried object, optionally
        qualified by the object's name or alias (``FROM Account.Contacts``)."""
        if self.role != _ROOT:
            raise self.error(MALFORMED_QUERY, _NESTED_CHILD_QUERY, item.pos)
        path = item.query.sobject
        *qualifier, written = path.names
        relationship = None
        if not qualifier or (len(qualifier) == 1 and self.names_queried_object(qualifier[0])):
            relationship = self.schema.child_relationship(self.sobject, written)
        if relationship is None:
            raise self.error(INVALID_TYPE, _UNKNOWN_CHILD_RELATIONSHIP.format(name=".".join(path.names)), path.pos)
        compiler = self.subquery_compiler(item.query, _CHILD)
        compiler.sobject, foreign_key = relationship
        return _ChildQuery(written, foreign_key, compiler.compile(), self.schema.live_rows, item.pos)

    # -- literals ------------------------------------------------------------------------------
    def check_aggregate(self, item: AggregateItem, ref: _FieldRef) -> None:
        """Salesforce refuses an aggregate a field type does not support (Boolean fields support none)."""
        allowed = {
            BOOLEAN: (),
            ID: ("COUNT", "COUNT_DISTINCT"),
            NUMBER_KIND: ("COUNT", "COUNT_DISTINCT", "MIN", "MAX", "SUM", "AVG"),
        }.get(ref.kind, ("COUNT", "COUNT_DISTINCT", "MIN", "MAX"))
        if item.function not in allowed:
            raise self.error(
                MALFORMED_QUERY, f"field {ref.field.name} does not support aggregate operator {item.function}", item.pos
            )

    def wrong_type(self, ref: _FieldRef) -> SoqlError:
        kind = ref.kind
        word = _TYPE_WORD.get(kind) or _NUMBER_TYPE_WORD.get(ref.field.type.lower(), "double")
        quoting = "should be enclosed in quotes" if kind in (TEXT, ID) else "should not be enclosed in quotes"
        message = f"value of filter criterion for field '{ref.field.name}' must be of type {word} and {quoting}"
        return self.error(INVALID_FIELD, message, ref.pos)

    def literal_value(self, ref: _FieldRef, literal: Literal) -> object:
        """The literal in the field's comparable domain; a date literal gives ("range", literal)."""
        token = literal.token
        kind = ref.kind
        if token.kind == IDENT and token.upper == "NULL":
            return None
        if literal.date_literal:
            if kind not in (DATETIME_KIND, DATE_KIND):
                raise self.wrong_type(ref)
            return ("range", literal)
        if kind == TEXT:
            if token.kind != STRING:
                raise self.wrong_type(ref)
            return token.value.lower() or None
        if kind == ID:
            if token.kind != STRING:
                raise self.wrong_type(ref)
            if token.value == "":
                return None
            try:
                return ids.to_18(token.value)
            except ids.MalformedId:
                raise self.error(INVALID_QUERY_FILTER_OPERATOR, f"invalid ID field: {token.value}", ref.pos) from None
        if kind == DATETIME_KIND:
            if token.kind != DATETIME:
                raise self.wrong_type(ref)
            try:
                return canonical_datetime(token.text)
            except ValueError:
                raise self.error(MALFORMED_QUERY, f"unexpected token: '{token.text}'", token.pos) from None
        if kind == DATE_KIND:
            if token.kind != DATE:
                raise self.wrong_type(ref)
            try:
                return date.fromisoformat(token.text).isoformat()
            except ValueError:
                raise self.error(MALFORMED_QUERY, f"unexpected token: '{token.text}'", token.pos) from None
        if kind == BOOLEAN:
            if token.kind != IDENT or token.upper not in ("TRUE", "FALSE"):
                raise self.wrong_type(ref)
            return token.upper == "TRUE"
        if token.kind != NUMBER:
            raise self.wrong_type(ref)
        text = token.text
        return float(text) if any(c in text for c in ".eE") else int(text)

    # -- conditions ----------------------------------------------------------------------------
    def condition(self, node) -> _Binder:
        return self._condition(node, _WHOLE)[0]

    def _condition(self, node, place: str) -> tuple[_Binder, int]:
        """The binder and a rough cost per record; AND/OR evaluate cheap operands first (all are pure)."""
        if isinstance(node, BoolOp):
            operand_place = _NESTED
            if place == _WHOLE:
                operand_place = _CONJUNCT if node.operator == "AND" else _DISJUNCT
            parts = sorted((self._condition(operand, operand_place) for operand in node.operands),
                           key=lambda part: part[1])
            binders = [binder for binder, _ in parts]
            cost = sum(cost for _, cost in parts)
            return (_bind_all(binders) if node.operator == "AND" else _bind_any(binders)), cost
        if isinstance(node, Not):
            inner, cost = self._condition(node.operand, _NESTED)
            return (lambda env: _negate(inner(env))), cost + 1
        if isinstance(node, SemiJoin):
            return self.semi_join(node, place), 2  # a set lookup per record; the set is built once per run
        binder = self.comparison(node)
        return binder, self._cost(node)

    # -- semi-joins and anti-joins ---------------------------------------------------------------
    def semi_join(self, node: SemiJoin, place: str) -> _Binder:
        self.check_semi_join_place(node, place)
        ref = self.resolve(node.path)
        if ref.kind != ID:
            written = ".".join(node.path.names)
            raise self.error(MALFORMED_QUERY, f"semi join sub selects can only be compared to id fields, cannot use: "
                                              f"'{written}'", node.path.pos)
        return _bind_semi_join(ref, self.id_subquery(node.query), node.negated)

    def check_semi_join_place(self, node: SemiJoin, place: str) -> None:
        """Salesforce's limits: no nesting, no OR, only at the top level of WHERE, at most two."""
        if self.role == _SEMI_JOIN:
            message = "Nesting of semi join sub-selects is not supported"
        elif place == _DISJUNCT:
            message = "Semi join sub-selects are not allowed with the 'OR' operator"
        elif place == _NESTED:
            message = ("Semi join sub-selects are only allowed at the top level WHERE expressions and not in nested "
                       "WHERE expressions.")
        else:
            self.semi_joins += 1
            if self.semi_joins <= MAX_SEMI_JOINS:
                return
            message = f"Maximum {MAX_SEMI_JOINS} semi join sub-selects are allowed"
        raise self.error(MALFORMED_QUERY, message, node.path.pos)

    def id_subquery(self, ast: QueryAst) -> _IdSubquery:
        inner = self.subquery_compiler(ast, _SEMI_JOIN)
        sobject = inner.resolve_object()
        if sobject == self.sobject:
            raise self.error(MALFORMED_QUERY, "The inner and outer selects should not be on the same object type",
                             ast.sobject.pos)
        [selected] = ast.items
        ref = inner.resolve(selected)
        if ref.kind != ID:
            written = ".".join(selected.names)
            raise self.error(MALFORMED_QUERY, f"semi join sub selects can only query id fields, cannot use: "
                                              f"'{written}'", selected.pos)
        where = inner.condition(ast.where) if ast.where is not None else None
        return _IdSubquery(sobject, ref, where, self.schema.live_rows)

    def compared_field(self, node: Comparison) -> _FieldRef:
        return self.resolve(node.path)

    def _cost(self, node: Comparison) -> int:
        ref = self.compared_field(node)
        if ref.hops:
            return 10 * len(ref.hops)
        if node.operator in ("=", "!=") and ref.kind in (ID, NUMBER_KIND, BOOLEAN):
            return 1
        if node.operator == "LIKE":
            return 4
        return 2 if ref.kind == DATETIME_KIND else 3

    def comparison(self, node: Comparison) -> _Binder:
        ref = self.compared_field(node)
        kind = ref.kind
        normalize = _normalizer(kind)
        op = node.operator

        if op == "LIKE":
            if kind != TEXT:
                word = "id" if kind == ID else ref.field.type.lower()
                raise self.error(INVALID_QUERY_FILTER_OPERATOR, f"invalid operator on {word} field", ref.pos)
            token = node.values[0].token
            if token.kind != STRING:
                raise self.wrong_type(ref)
            regex = re.compile(token.like_pattern, re.IGNORECASE | re.DOTALL)
            match = regex.fullmatch

            def test_like(value) -> bool:
                return bool(value) and match(value) is not None

            return self._bind_test(ref, test_like)

        values = [self.literal_value(ref, literal) for literal in node.values]
        if any(isinstance(v, tuple) for v in values):
            return self._bind_date_literal(ref, op, values, normalize)

        if op in ("IN", "NOT IN"):
            wanted = frozenset(v for v in values if v is not None)
            with_null = any(v is None for v in values)

            def test_in(value) -> bool:
                value = normalize(value)
                return value in wanted if value is not None else with_null

            if op == "IN":
                return self._bind_test(ref, test_in)
            return self._bind_test(ref, lambda value: not test_in(value))

        literal = values[0]
        if op in ("=", "!=") and literal is not None and not ref.hops and kind in (ID, NUMBER_KIND, BOOLEAN):
            return self._bind_simple_equality(ref.field.name, kind, op == "=", literal)
        if op == "=":
            if literal is None:
                return self._bind_test(ref, lambda value: normalize(value) is None)
            return self._bind_test(ref, lambda value: normalize(value) == literal)
        if op == "!=":
            if literal is None:
                return self._bind_test(ref, lambda value: normalize(value) is not None)
            return self._bind_test(ref, lambda value: normalize(value) != literal)
        if literal is None:  # nothing is smaller or larger than null
            return lambda env: lambda record: False
        compare = _ORDERING[op]

        if kind == DATETIME_KIND and not ref.hops:
            return _bind_datetime_order(ref.field.name, op, literal)

        def test_order(value) -> bool:
            value = normalize(value)
            return value is not None and compare(value, literal)

        return self._bind_test(ref, test_order)

    def _bind_date_literal(self, ref: _FieldRef, op: str, values: list, normalize) -> _Binder:
        kind = ref.kind
        to_domain = _datetime_start_of if kind == DATETIME_KIND else date.isoformat

        def bind(env: _Env):
            bounds = []
            for value in values:
                if isinstance(value, tuple):
                    first, after_last = _date_literal_range(value[1], env.today)
                    bounds.append((to_domain(first), to_domain(after_last)))
                else:
                    bounds.append(value)

            def in_bound(v, bound) -> bool:
                if isinstance(bound, tuple):
                    return bound[0] <= v < bound[1]
                return v == bound

            low, high = bounds[0] if isinstance(bounds[0], tuple) else (None, None)
            tests = {
                "=": lambda v: v is not None and in_bound(v, bounds[0]),
                "!=": lambda v: v is None or not in_bound(v, bounds[0]),
                "<": lambda v: v is not None and v < low,
                "<=": lambda v: v is not None and v < high,
                ">": lambda v: v is not None and v >= high,
                ">=": lambda v: v is not None and v >= low,
                "IN": lambda v: any(in_bound(v, b) if v is not None else b is None for b in bounds),
                "NOT IN": lambda v: not any(in_bound(v, b) if v is not None else b is None for b in bounds),
            }
            test = tests[op]
            get = ref.getter(env.lookup)
            return lambda record: test(normalize(get(record)))

        return bind

    @staticmethod
    def _bind_simple_equality(name: str, kind: str, equal: bool, literal: object) -> _Binder:
        """``Flag = true``, ``Id = '...'``, ``Amount != 5`` on the queried object: one closure, no normalising
        (a non-null literal never equals a null or empty value anyway)."""
        if kind == BOOLEAN:
            wanted = literal is equal  # "Flag != true" is "Flag = false"; null reads as false
            if wanted:
                return lambda env: lambda record: bool(record.get(name))
            return lambda env: lambda record: not record.get(name)
        if equal:
            return lambda env: lambda record: record.get(name) == literal
        return lambda env: lambda record: record.get(name) != literal

    @staticmethod
    def _bind_test(ref: _FieldRef, test: Callable[[object], bool]) -> _Binder:
        if not ref.hops:
            name = ref.field.name
            return lambda env: lambda record: test(record.get(name))

        def bind(env: _Env):
            get = ref.getter(env.lookup)
            return lambda record: test(get(record))

        return bind


# The type of an aggregate's value, which decides the literals it compares with; MIN and MAX keep the field's type.
_AGGREGATE_TYPE = {"COUNT": "int", "COUNT_DISTINCT": "int", "SUM": "double", "AVG": "double"}


class _GroupCompiler(_Compiler):
    """HAVING (and aggregates in ORDER BY) compile like WHERE, over one record per group (see
    ``CompiledQuery._group_record``): a comparison reads an aggregate of the group or a grouped field."""

    def __init__(self, outer: _Compiler, group_by: list[_FieldRef]):
        super().__init__(outer.query, outer.token_starts, outer.schema, outer.ast, api_version=outer.api_version,
                         role=outer.role)
        self.sobject = outer.sobject
        self.grouped = {ref.canonical_path for ref in group_by}
        self.aggregates: dict[str, tuple[str, _FieldRef | None]] = {}  # key -> (function, field): what groups compute

    def compared_field(self, node: Comparison) -> _FieldRef:
        if isinstance(node.path, AggregateItem):
            return self.aggregate_field(node.path)
        ref = self.resolve(node.path)
        if ref.canonical_path not in self.grouped:
            written = ".".join(node.path.names)
            raise self.error(MALFORMED_QUERY, f"Field must be grouped or aggregated: {written}", node.path.pos)
        return ref

    def aggregate_field(self, item: AggregateItem) -> _FieldRef:
        """The aggregate as a field of the group record, named by its key (e.g. ``COUNT(Id)``)."""
        if item.path is None:
            self.aggregates["COUNT()"] = ("COUNT", None)
            return _FieldRef((), FieldInfo("COUNT()", "int"), item.pos)
        ref = self.resolve(item.path)
        self.check_aggregate(item, ref)
        key = f"{item.function}({'.'.join(ref.canonical_path)})"
        self.aggregates[key] = (item.function, ref)
        return _FieldRef((), FieldInfo(key, _AGGREGATE_TYPE.get(item.function, ref.field.type)), item.pos)

    def semi_join(self, node: SemiJoin, place: str) -> _Binder:
        raise self.error(MALFORMED_QUERY, "Semi join sub-selects are not allowed in the HAVING clause", node.path.pos)


def _bind_datetime_order(name: str, op: str, literal: str) -> _Binder:
    """The hot path of incremental syncs (``SystemModstamp >= ...``): canonical stamps compare as
    plain strings; anything else is converted first."""
    compare = _ORDERING[op]

    def slow(value) -> bool:
        return bool(value) and compare(canonical_datetime(value), literal)

    if op == ">=":
        def predicate(record: dict) -> bool:
            value = record.get(name)
            return value >= literal if (value.__class__ is str and len(value) == 28 and value[23:] == "+0000") else slow(value)
    elif op == ">":
        def predicate(record: dict) -> bool:
            value = record.get(name)
            return value > literal if (value.__class__ is str and len(value) == 28 and value[23:] == "+0000") else slow(value)
    elif op == "<":
        def predicate(record: dict) -> bool:
            value = record.get(name)
            return value < literal if (value.__class__ is str and len(value) == 28 and value[23:] == "+0000") else slow(value)
    else:
        def predicate(record: dict) -> bool:
            value = record.get(name)
            return value <= literal if (value.__class__ is str and len(value) == 28 and value[23:] == "+0000") else slow(value)

    return lambda env: predicate


def _bind_all(parts: list[_Binder]) -> _Binder:
    def bind(env: _Env):
        predicates = [part(env) for part in parts]
        if len(predicates) == 2:
            first, second = predicates
            return lambda record: first(record) and second(record)
        return lambda record: all(predicate(record) for predicate in predicates)

    return bind


def _bind_any(parts: list[_Binder]) -> _Binder:
    def bind(env: _Env):
        predicates = [part(env) for part in parts]
        return lambda record: any(predicate(record) for predicate in predicates)

    return bind


def _negate(predicate: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda record: not predicate(record)


@dataclass(frozen=True)
class _IdSubquery:
    """The inner query of a semi-join: one id/reference field of the live records that pass its WHERE."""

    sobject: str
    selected: _FieldRef
    where: _Binder | None
    live_rows: Callable[[str], Iterable[dict]]

    def ids(self, env: _Env) -> frozenset:
        rows = self.live_rows(self.sobject)  # deleted records never count, not even for queryAll
        if self.where is not None:
            rows = filter(self.where(env), rows)
        return frozenset(filter(None, map(self.selected.getter(env.lookup), rows)))  # nulls never match


def _bind_semi_join(ref: _FieldRef, inner: _IdSubquery, negated: bool) -> _Binder:
    """The inner ids are collected once per run (when bound). As in Salesforce, a null value matches neither
    a semi-join nor an anti-join, and the inner query's nulls exclude nothing."""

    def bind(env: _Env):
        ids = inner.ids(env)
        get = ref.getter(env.lookup)
        if not negated:
            return lambda record: get(record) in ids

        def outside(record: dict) -> bool:
            value = get(record)
            return bool(value) and value not in ids

        return outside

    return bind


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OrderKey:
    ref: _FieldRef
    descending: bool
    nulls_last: bool


@dataclass
class _ProjectionNode:
    """Fields of one object in SELECT order; relationship entries hold a nested node."""

    entries: list[tuple[str, "object"]]  # (key, None for a field | (hop, _ProjectionNode) | _ChildQuery)


class CompiledQuery:
    """A SOQL query resolved against a schema; run it on any number of record sets."""

    def __init__(
        self,
        *,
        sobject: str,
        is_count: bool,
        limit: int | None,
        offset: int | None,
        outputs: list,
        where: _Binder | None,
        order_by: list[_OrderKey],
        aggregates: list[tuple[str, str, _FieldRef | None]],
        group_by: list[_FieldRef],
        having: _Binder | None,
        group_aggregates: list[tuple[str, str, _FieldRef | None]],
    ):
        select_refs = [output for output in outputs if isinstance(output, _FieldRef)]
        self.sobject = sobject
        self.is_count = is_count
        self.limit = limit
        self.offset = offset
        self.select_paths: list[tuple[str, ...]] = [ref.canonical_path for ref in select_refs]
        # aggregate functions and/or GROUP BY: AggregateResult rows, see ``aggregate``
        self.is_aggregate = bool(aggregates) or bool(group_by)
        self._child_queries = [output for output in outputs if isinstance(output, _ChildQuery)]
        self.has_child_queries = bool(self._child_queries)
        self._aggregates = aggregates
        self._group_by = group_by
        self._having = having  # reads a group record (see ``_group_record``)
        self._group_aggregates = group_aggregates  # what HAVING and ORDER BY read of each group
        self._grouped_select = [(ref.field.name, ref) for ref in select_refs]
        self._where = where
        self._order_by = order_by
        self._projection = _projection_tree(outputs)

    def run(self, records: Iterable[dict], lookup: Lookup, *, now: datetime | None = None) -> list[dict]:
        """Matching stored records (not projected), ordered, after OFFSET and LIMIT.

        With parent-to-child subqueries each is a copy that also holds its matching child records
        (a list, maybe empty) under the subquery's relationship name as written.
        ``lookup(sobject, id)`` returns a related stored record (or None) for relationship paths.
        ``now`` is the clock for date literals such as TODAY (default: the real UTC time).
        """
        env = _run_env(lookup, now)
        matching = self._matching(records, env)
        if self.is_aggregate:  # ORDER BY, LIMIT and OFFSET apply to the groups
            return matching
        matching = self._window(matching)
        if self._child_queries:
            matching = self._with_children(matching, env)
        return matching

    def _matching(self, records: Iterable[dict], env: _Env) -> list[dict]:
        """The records that pass WHERE, in ORDER BY order (aggregate queries order their groups instead)."""
        if self._where is None:
            matching = list(records)
        else:
            matching = list(filter(self._where(env), records))
        if self._order_by and not self.is_count and not self.is_aggregate:
            matching = _sorted(matching, self._order_by, env)
        return matching

    def _window(self, rows: list) -> list:
        """``rows`` after OFFSET and LIMIT."""
        start = self.offset or 0
        end = None if self.limit is None else start + self.limit
        return rows[start:end] if start or end is not None else rows

    def _with_children(self, parents: list[dict], env: _Env) -> list[dict]:
        """Copies of ``parents`` holding each subquery's children (a list) under its key; stored records stay
        unchanged, so open cursors keep their snapshot."""
        parent_ids = {parent["Id"] for parent in parents}
        lists = [(child.key, child.by_parent(parent_ids, env)) for child in self._child_queries]
        return [{**parent, **{key: children.get(parent["Id"], []) for key, children in lists}} for parent in parents]

    def project(self, record: dict, lookup: Lookup, api_version: str = "59.0") -> dict:
        """``record`` as the REST API returns it: attributes first, then the SELECT fields in order."""
        return _project(record, self.sobject, self._projection, lookup, api_version)

    def aggregate(self, matching: list[dict], lookup: Lookup, *, now: datetime | None = None) -> list[dict]:
        """AggregateResult rows: one per group (one in all without GROUP BY) that passes HAVING, then ORDER BY,
        OFFSET, LIMIT.

        Each row holds the grouped fields of the SELECT (under their field name) and the aggregates
        (under their alias, else ``expr0``, ``expr1``, ...), in SELECT order.  Aggregates skip nulls.
        ``now`` is the clock for date literals in HAVING, as in ``run``.
        """
        env = _run_env(lookup, now)
        groups = [(self._group_record(members, env.lookup), members) for members in self._groups(matching, env.lookup)]
        if self._having is not None:
            passes = self._having(env)
            groups = [(record, members) for record, members in groups if passes(record)]
        if self._group_by:
            groups = self._ordered(groups, env)
        return [self._row(members, env.lookup) for _, members in self._window(groups)]

    def _group_record(self, members: list[dict], lookup: Lookup) -> dict:
        """One record standing for a group in HAVING and ORDER BY: its first record (whose grouped fields hold
        the group's values) plus the aggregates they name, under keys such as ``COUNT(Id)`` (no field name has
        parentheses)."""
        values = {key: _aggregate_value(function, ref, members, lookup) for key, function, ref in self._group_aggregates}
        return {**(members[0] if members else {}), **values}

    def _groups(self, matching: list[dict], lookup: Lookup) -> list[list[dict]]:
        """The records of each group, in order of first appearance."""
        if not self._group_by:
            return [matching]
        keys = [_group_key(ref, lookup) for ref in self._group_by]
        groups: dict[tuple, list[dict]] = {}
        for record in matching:
            groups.setdefault(tuple(key(record) for key in keys), []).append(record)
        return list(groups.values())

    def _ordered(self, groups: list[tuple[dict, list[dict]]], env: _Env) -> list[tuple[dict, list[dict]]]:
        """Groups in ORDER BY order (default: by the grouped fields), sorted by their group records."""
        order = self._order_by or [_OrderKey(ref, False, False) for ref in self._group_by]
        return [groups[i] for i in _sorted_positions([record for record, _ in groups], order, env)]

    def _row(self, members: list[dict], lookup: Lookup) -> dict:
        row: dict = {"attributes": {"type": "AggregateResult"}}
        first = members[0] if members else {}
        for key, ref in self._grouped_select:
            row[key] = ref.getter(lookup)(first) if members else None
        for key, function, ref in self._aggregates:
            row[key] = _aggregate_value(function, ref, members, lookup)
        return row


@dataclass(frozen=True)
class _ChildQuery:
    """A parent-to-child subquery such as ``(SELECT LastName FROM Contacts)``."""

    key: str  # the relationship name as written: the key of the child list in the parent record
    foreign_key: str  # the child's field that points at the parent, e.g. AccountId
    compiled: CompiledQuery  # the subquery over the child object
    live_rows: Callable[[str], Iterable[dict]]
    pos: int

    def by_parent(self, parent_ids: set[str], env: _Env) -> dict[str, list[dict]]:
        """Parent id -> its matching children, ordered and cut by the subquery's OFFSET/LIMIT (per parent):
        one pass over the child object per run, however many parents there are."""
        foreign_key = self.foreign_key
        candidates = [row for row in self.live_rows(self.compiled.sobject) if row.get(foreign_key) in parent_ids]
        children: dict[str, list[dict]] = {}
        for row in self.compiled._matching(candidates, env):
            children.setdefault(row[foreign_key], []).append(row)
        return {parent_id: self.compiled._window(rows) for parent_id, rows in children.items()}

    def result(self, children: list[dict] | None, lookup: Lookup, api_version: str) -> dict | None:
        """The child list as the REST API nests it in the parent record (null without children)."""
        if not children:
            return None
        project = self.compiled.project
        records = [project(child, lookup, api_version) for child in children]
        return {"totalSize": len(records), "done": True, "records": records}


def _group_key(ref: _FieldRef, lookup: Lookup) -> Callable[[dict], object]:
    """Grouping value of a record: text groups case-insensitively, as in Salesforce."""
    get = ref.getter(lookup)
    if ref.kind == TEXT:
        return lambda record: (get(record) or "").lower() or None
    if ref.kind == DATETIME_KIND:
        return lambda record: canonical_datetime(value) if (value := get(record)) else None
    return get


def _aggregate_value(function: str, ref: _FieldRef | None, members: list[dict], lookup: Lookup) -> object:
    if ref is None:  # COUNT()
        return len(members)
    get = ref.getter(lookup)
    values = [value for value in map(get, members) if value not in (None, "")]
    if function == "COUNT":
        return len(values)
    if function == "COUNT_DISTINCT":
        return len({value.lower() if isinstance(value, str) and ref.kind == TEXT else value for value in values})
    if not values:
        return None
    if function == "SUM":
        return sum(values)
    if function == "AVG":
        return sum(values) / len(values)
    if ref.kind == DATETIME_KIND:
        pick = min if function == "MIN" else max
        return pick(values, key=canonical_datetime)
    if ref.kind == TEXT:
        return (min if function == "MIN" else max)(values, key=str.lower)
    return (min if function == "MIN" else max)(values)


def _run_env(lookup: Lookup, now: datetime | None) -> _Env:
    """The per-run things: a caching ``lookup`` and the UTC date of ``now`` (default: the real time)."""
    moment = now or datetime.now(timezone.utc)
    return _Env(_caching(lookup), moment.astimezone(timezone.utc).date() if moment.tzinfo else moment.date())


def _caching(lookup: Lookup) -> Lookup:
    cache: dict[tuple[str, str], dict | None] = {}

    def cached(sobject: str, record_id: str):
        key = (sobject, record_id)
        if key not in cache:
            cache[key] = lookup(sobject, record_id)
        return cache[key]

    return cached


def _column(records: list[dict], ref: _FieldRef, env: _Env) -> list:
    """The sort values of one ORDER BY field for every record (None for null), in record order."""
    if ref.hops:
        get = ref.getter(env.lookup)
        raw = [get(record) for record in records]
    else:
        name = ref.field.name
        raw = [record.get(name) for record in records]
    kind = ref.kind
    if kind == TEXT:
        return [v.lower() if v else None for v in raw]
    if kind == ID:
        return [v or None for v in raw]
    if kind == DATETIME_KIND:
        return [
            v if v is None or (len(v) == 28 and v[23:] == "+0000") else (canonical_datetime(v) if v else None)
            for v in raw
        ]
    if kind == DATE_KIND:
        return [v[:10] if v else None for v in raw]
    return raw


def _sorted(records: list[dict], order_by: list[_OrderKey], env: _Env) -> list[dict]:
    return [records[i] for i in _sorted_positions(records, order_by, env)]


def _sorted_positions(records: list[dict], order_by: list[_OrderKey], env: _Env) -> list[int]:
    """The records' positions in Salesforce order (ASC NULLS FIRST / DESC NULLS LAST unless told).

    One stable pass per key, last key first, over plain value columns: faster than tuple keys
    (measured), and each key keeps its own direction and null placement.
    """
    positions = list(range(len(records)))
    for key in reversed(order_by):
        column = _column(records, key.ref, env)
        if None not in column:
            positions.sort(key=column.__getitem__, reverse=key.descending)
            continue
        nulls = [i for i in positions if column[i] is None]
        present = [i for i in positions if column[i] is not None]
        present.sort(key=column.__getitem__, reverse=key.descending)
        positions = present + nulls if key.nulls_last else nulls + present
    return positions


def _projection_tree(outputs: list) -> _ProjectionNode:
    root = _ProjectionNode([])
    for ref in outputs:
        if isinstance(ref, _ChildQuery):
            root.entries.append((ref.key, ref))
            continue
        node = root
        for hop in ref.hops:
            existing = next((entry for key, entry in node.entries if key == hop.relationship), None)
            if existing is None:
                existing = (hop, _ProjectionNode([]))
                node.entries.append((hop.relationship, existing))
            node = existing[1]
        node.entries.append((ref.field.name, None))
    return root


def _project(record: dict, sobject: str, node: _ProjectionNode, lookup: Lookup, api_version: str) -> dict:
    out: dict = {
        "attributes": {"type": sobject, "url": f"/services/data/v{api_version}/sobjects/{sobject}/{record.get('Id')}"}
    }
    for key, entry in node.entries:
        if entry is None:
            out[key] = record.get(key)
            continue
        if isinstance(entry, _ChildQuery):
            out[key] = entry.result(record.get(key), lookup, api_version)
            continue
        hop, child = entry
        foreign_key = record.get(hop.foreign_key)
        related = lookup(hop.target, foreign_key) if foreign_key else None
        out[key] = None if related is None else _project(related, hop.target, child, lookup, api_version)
    return out


def compile_query(soql: str, schema: SchemaProvider, *, api_version: str = "59.0") -> CompiledQuery:
    """Parse and resolve ``soql``; raise ``SoqlError`` with Salesforce's code and message if it is invalid."""
    ast, token_starts = parse(soql)
    compiler = _Compiler(soql, token_starts, schema, ast, api_version=api_version)
    compiler.resolve_object()
    return compiler.compile()

"""Recursive-descent SOQL parser: tokens -> AST (names still unresolved; see ``soql.compile_query``).

Grammar (the subset the emulator serves; keywords case-insensitive)::

    query      := SELECT items FROM name [alias] clauses
    clauses    := [WHERE condition] [GROUP BY path (',' path)* [HAVING condition]] [ORDER BY order (',' order)*]
                  [LIMIT int] [OFFSET int]
    items      := COUNT '(' ')' | item (',' item)*
    item       := path | aggregate [alias]
                | FIELDS '(' (ALL | STANDARD | CUSTOM) ')'
                | '(' SELECT items FROM path [alias] clauses ')'   -- parent-to-child, e.g. FROM Contacts
    aggregate  := AGGREGATE '(' path ')'     -- COUNT COUNT_DISTINCT MIN MAX SUM AVG
    condition  := unary (AND unary)* | unary (OR unary)*     -- mixing needs parentheses, as in SOQL
    unary      := NOT unary | '(' condition ')' | operand op value | operand [NOT] IN '(' value (',' value)* ')'
                | operand [NOT] IN '(' SELECT path FROM name [alias] [WHERE condition] ')'   -- semi-/anti-join
                | operand LIKE value
    operand    := path | aggregate | COUNT '(' ')'     -- aggregates in HAVING only
    value      := string | number | datetime | date | TRUE | FALSE | NULL | DATE_LITERAL [':' int]
    order      := path [ASC | DESC] [NULLS (FIRST | LAST)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .soql_lexer import (
    DATE,
    DATETIME,
    EOF,
    IDENT,
    MALFORMED_QUERY,
    NUMBER,
    OPERATOR,
    STRING,
    SYMBOL,
    SoqlError,
    Token,
    positioned_error,
    tokenize,
)

# Words that end a clause, so they can never be an alias.
RESERVED = frozenset(
    """AND ASC DESC EXCLUDES FIRST FROM GROUP HAVING IN INCLUDES LAST LIKE LIMIT NOT NULL NULLS OR
    SELECT WHERE WITH ORDER BY OFFSET TRUE FALSE FOR USING UPDATE""".split()
)


@dataclass(frozen=True, slots=True)
class Path:
    names: tuple[str, ...]  # as written, e.g. ("account", "Name")
    pos: int


@dataclass(frozen=True, slots=True)
class Literal:
    token: Token
    # for date literals like LAST_N_DAYS:7
    date_literal: str | None = None
    n: int | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    path: Path | AggregateItem  # an aggregate only in HAVING
    operator: str  # = != < <= > >= LIKE IN NOT IN
    values: tuple[Literal, ...]
    operator_pos: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    operator: str  # AND | OR
    operands: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: object


@dataclass(frozen=True, slots=True)
class OrderItem:
    path: Path | AggregateItem  # an aggregate only in aggregate queries (``ORDER BY COUNT(Id) DESC``)
    descending: bool
    nulls_last: bool


AGGREGATE_FUNCTIONS = frozenset(("COUNT", "COUNT_DISTINCT", "MIN", "MAX", "SUM", "AVG"))


@dataclass(frozen=True, slots=True)
class AggregateItem:
    function: str  # one of AGGREGATE_FUNCTIONS, upper case
    path: Path | None  # None for COUNT()
    alias: str | None
    pos: int


FIELDS_GROUPS = frozenset(("ALL", "STANDARD", "CUSTOM"))


@dataclass(frozen=True, slots=True)
class FieldsItem:
    """``FIELDS(ALL)``, ``FIELDS(STANDARD)`` or ``FIELDS(CUSTOM)`` in the SELECT list."""

    group: str  # one of FIELDS_GROUPS, upper case
    pos: int


@dataclass(frozen=True, slots=True)
class ChildQuery:
    """A parent-to-child subquery in the SELECT list; its FROM path names the relationship (``Contacts``)."""

    query: QueryAst
    pos: int


@dataclass(frozen=True, slots=True)
class SemiJoin:
    """``path [NOT] IN (SELECT field FROM Object [WHERE ...])``: a semi-join, or with NOT an anti-join."""

    path: Path | AggregateItem  # an aggregate only in HAVING, which refuses semi-joins
    negated: bool
    query: QueryAst  # one selected Path, no clauses but WHERE


SelectItem = Path | AggregateItem | FieldsItem | ChildQuery


@dataclass
class QueryAst:
    items: list[SelectItem]
    sobject: Path  # what follows FROM: an object name, or in a parent-to-child subquery a relationship
    alias: str | None
    where: object | None
    group_by: list[Path] = field(default_factory=list)
    having: object | None = None  # a condition; only after GROUP BY
    order_by: list[OrderItem] = field(default_factory=list)
    limit: Token | None = None
    offset: Token | None = None


# Date literals: name -> whether it takes ":n"
DATE_LITERALS = {
    name: False
    for name in (
        "YESTERDAY TODAY TOMORROW LAST_WEEK THIS_WEEK NEXT_WEEK LAST_MONTH THIS_MONTH NEXT_MONTH "
        "LAST_90_DAYS NEXT_90_DAYS THIS_YEAR LAST_YEAR NEXT_YEAR"
    ).split()
}
DATE_LITERALS.update({name: True for name in ("LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO")})

_COMPARISON_OPERATORS = frozenset(("=", "!=", "<>", "<", "<=", ">", ">="))


class TokenCursor:
    """A position in a statement's tokens (SOQL here, SOSL in ``sosl.py``); ``unexpected`` quotes the
    statement with a caret under the token, with the statement kind's error code."""

    error_code = MALFORMED_QUERY

    def __init__(self, statement: str, tokens: list[Token], token_starts: list[int]):
        self.text = statement
        self.tokens = tokens
        self.token_starts = token_starts  # where error excerpts may start
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != EOF:
            self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.current
        return token.kind == IDENT and token.upper in words

    def at_symbol(self, symbol: str) -> bool:
        token = self.current
        return token.kind == SYMBOL and token.text == symbol

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.current
        return positioned_error(
            self.error_code, f"unexpected token: '{token.display()}'", self.text, token.pos, self.token_starts
        )


class _Parser(TokenCursor):
    def __init__(self, query: str):
        tokens = tokenize(query)
        # error excerpts start at a word or literal, never at punctuation
        super().__init__(query, tokens, [t.pos for t in tokens if t.kind not in (SYMBOL, OPERATOR)])

    # -- token helpers -------------------------------------------------------------------------

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect_symbol(self, symbol: str) -> Token:
        if not self.at_symbol(symbol):
            raise self.unexpected()
        return self.advance()

    def expect_name(self) -> Token:
        token = self.current
        if token.kind != IDENT or token.upper in RESERVED:
            raise self.unexpected()
        return self.advance()

    # -- grammar -------------------------------------------------------------------------------
    def parse(self) -> QueryAst:
        ast = self.statement(self.object_name)
        if self.current.kind != EOF:
            raise self.unexpected()
        return ast

    def statement(self, from_target) -> QueryAst:
        """``SELECT ... FROM`` what ``from_target`` reads, then the clauses; stops at the first other token."""
        self.expect_keyword("SELECT")
        items = self.select_items()
        self.expect_keyword("FROM")
        ast = QueryAst(items=items, sobject=from_target(), alias=self.alias(), where=None)
        if self.at_keyword("WHERE"):
            self.advance()
            ast.where = self.condition(self.path)
        if self.at_keyword("GROUP"):
            ast.group_by = self.by_clause(self.path)
            if self.at_keyword("HAVING"):  # Salesforce's grammar has HAVING inside the GROUP BY clause
                self.advance()
                ast.having = self.condition(self.having_operand)
        if self.at_keyword("ORDER"):
            ast.order_by = self.by_clause(self.order_item)
        if self.at_keyword("LIMIT"):
            self.advance()
            ast.limit = self.whole_number()
        if self.at_keyword("OFFSET"):
            self.advance()
            ast.offset = self.whole_number()
        return ast

    def semi_join_query(self) -> QueryAst:
        """The inner query of a semi-join: one field of one object and an optional WHERE, nothing else."""
        self.expect_keyword("SELECT")
        selected = self.path()
        self.expect_keyword("FROM")
        ast = QueryAst(items=[selected], sobject=self.object_name(), alias=self.alias(), where=None)
        if self.at_keyword("WHERE"):
            self.advance()
            ast.where = self.condition(self.path)
        return ast

    def object_name(self) -> Path:
        token = self.expect_name()
        return Path((token.text,), token.pos)

    def alias(self) -> str | None:
        if self.current.kind == IDENT and self.current.upper not in RESERVED:
            return self.advance().text
        return None

    def by_clause(self, item):
        """``GROUP BY`` / ``ORDER BY``: the keyword pair, then comma-separated items."""
        self.advance()
        self.expect_keyword("BY")
        items = [item()]
        while self.at_symbol(","):
            self.advance()
            items.append(item())
        return items

    def whole_number(self) -> Token:
        token = self.current
        if token.kind != NUMBER or not token.text.isdigit():
            raise self.unexpected()
        return self.advance()

    def path(self) -> Path:
        first = self.expect_name()
        names = [first.text]
        while self.at_symbol("."):
            self.advance()
            names.append(self.expect_name().text)
        return Path(tuple(names), first.pos)

    def select_items(self) -> list[SelectItem]:
        items: list[SelectItem] = [self.select_item()]
        if isinstance(items[0], AggregateItem) and items[0].path is None:
            return items  # COUNT() stands alone
        while self.at_symbol(","):
            self.advance()
            item = self.select_item()
            if isinstance(item, AggregateItem) and item.path is None:
                raise positioned_error(
                    MALFORMED_QUERY, "unexpected token: 'COUNT'", self.text, item.pos, self.token_starts
                )
            items.append(item)
        return items

    def select_item(self) -> SelectItem:
        token = self.current
        if self.at_symbol("("):
            self.advance()
            query = self.statement(self.path)
            self.expect_symbol(")")
            return ChildQuery(query, token.pos)
        followed_by_parenthesis = token.kind == IDENT and self.tokens[self.index + 1].text == "("
        if followed_by_parenthesis and token.upper == "FIELDS":
            self.advance()
            self.advance()
            if not self.at_keyword(*FIELDS_GROUPS):
                raise self.unexpected()
            group = self.advance().upper
            self.expect_symbol(")")
            return FieldsItem(group, token.pos)
        if self.at_aggregate_call():
            item = self.aggregate_call()
            if item.path is None:
                return item  # COUNT() takes no alias
            return AggregateItem(item.function, item.path, self.alias(), item.pos)
        return self.path()

    def at_aggregate_call(self) -> bool:
        token = self.current
        return token.kind == IDENT and token.upper in AGGREGATE_FUNCTIONS and self.tokens[self.index + 1].text == "("

    def aggregate_call(self) -> AggregateItem:
        """``COUNT()`` or ``FUNCTION(path)``, without alias."""
        token = self.advance()
        self.advance()
        if token.upper == "COUNT" and self.at_symbol(")"):
            self.advance()
            return AggregateItem("COUNT", None, None, token.pos)
        path = self.path()
        self.expect_symbol(")")
        return AggregateItem(token.upper, path, None, token.pos)

    def having_operand(self) -> Path | AggregateItem:
        return self.aggregate_call() if self.at_aggregate_call() else self.path()

    def condition(self, operand):
        """A WHERE or HAVING condition; ``operand`` reads what a comparison compares (a path, or in HAVING
        also an aggregate)."""
        operands = [self.unary(operand)]
        if not self.at_keyword("AND", "OR"):
            return operands[0]
        operator = self.current.upper
        while self.at_keyword(operator):
            self.advance()
            operands.append(self.unary(operand))
        if self.at_keyword("AND", "OR"):  # SOQL needs parentheses to mix AND and OR
            raise self.unexpected()
        return BoolOp(operator, tuple(operands))

    def unary(self, operand):
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.unary(operand))
        if self.at_symbol("("):
            self.advance()
            inner = self.condition(operand)
            self.expect_symbol(")")
            return inner
        return self.comparison(operand)

    def comparison(self, operand) -> Comparison | SemiJoin:
        path = operand()
        token = self.current
        if token.kind == OPERATOR and token.text in _COMPARISON_OPERATORS:
            self.advance()
            operator = "!=" if token.text == "<>" else token.text
            return Comparison(path, operator, (self.value(),), token.pos)
        if self.at_keyword("LIKE"):
            self.advance()
            return Comparison(path, "LIKE", (self.value(),), token.pos)
        operator = "IN"
        if self.at_keyword("NOT") and self.tokens[self.index + 1].upper == "IN":
            self.advance()
            operator = "NOT IN"
        if self.at_keyword("IN"):
            self.advance()
            self.expect_symbol("(")
            if self.at_keyword("SELECT"):
                inner = self.semi_join_query()
                self.expect_symbol(")")
                return SemiJoin(path, operator == "NOT IN", inner)
            values = [self.value()]
            while self.at_symbol(","):
                self.advance()
                values.append(self.value())
            self.expect_symbol(")")
            return Comparison(path, operator, tuple(values), token.pos)
        raise self.unexpected()

    def value(self) -> Literal:
        token = self.current
        if token.kind in (STRING, NUMBER, DATETIME, DATE):
            self.advance()
            return Literal(token)
        if token.kind == IDENT:
            word = token.upper
            if word in ("TRUE", "FALSE", "NULL"):
                self.advance()
                return Literal(token)
            if word in DATE_LITERALS:
                self.advance()
                if not DATE_LITERALS[word]:
                    return Literal(token, date_literal=word)
                self.expect_symbol(":")
                number = self.whole_number()
                return Literal(token, date_literal=word, n=int(number.text))
        raise self.unexpected()

    def order_item(self) -> OrderItem:
        path = self.aggregate_call() if self.at_aggregate_call() else self.path()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().upper == "DESC"
        nulls_last = descending  # Salesforce: ASC puts nulls first, DESC puts them last
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_last = self.advance().upper == "LAST"
        return OrderItem(path, descending, nulls_last)


def parse(query: str) -> tuple[QueryAst, list[int]]:
    """Parse ``query``; returns the AST and the token start offsets (for error excerpts)."""
    parser = _Parser(query)
    return parser.parse(), parser.token_starts

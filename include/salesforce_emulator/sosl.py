"""SOSL for the REST ``search/`` resource: parse ``FIND {term} [IN ... FIELDS] [RETURNING ...] [LIMIT n]``
and run it on stored records (no HTTP here).

The term is matched the way Salesforce's search index works: field values and the term are split into
tokens at spaces and punctuation and compared case-insensitively; a word holding punctuation (an e-mail
address) or a quoted phrase matches its tokens in order within one field; ``*`` stands for any number of
characters and ``?`` for one, inside a token.  Words are ANDed unless ``OR`` is written; ``AND NOT`` and
parentheses work too.  Only text fields are searched (``IN NAME|EMAIL|PHONE|ALL FIELDS`` picks which);
deleted records never match.

Each RETURNING item ``Object(fields [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n])`` runs as the equivalent
SOQL query over the records matching the term, so field lists, filters and their errors (INVALID_TYPE,
INVALID_FIELD, ...) are the SOQL module's; their messages quote the SOSL statement instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import schema
from .queries import QueryEngine
from .soql import CompiledQuery
from .soql_parser import TokenCursor
from .soql_lexer import EOF, IDENT, MALFORMED_QUERY, NUMBER, SYMBOL, SoqlError, Token, positioned_error, tokenize
from .store import RequestError, Store

MALFORMED_SEARCH = "MALFORMED_SEARCH"
INVALID_SEARCH = "INVALID_SEARCH"
DEFAULT_LIMIT = 2000
SEARCHED_WITHOUT_RETURNING = ("Lead", "Contact", "Account", "Campaign")
MIN_TERM_CHARACTERS = 2

# Unescaped, these fail the statement (Salesforce's reserved characters minus the term's own syntax ( ) " * ?)
_RESERVED = frozenset("&|![]^~:+-'{\\")
_TEXT_TYPES = frozenset({"string", "email", "phone", "textarea", "picklist", "url"})
_NAME_FIELDS = frozenset({"Name", "FirstName", "LastName", "Company"})
_SCOPES: dict[str, Callable[[schema.FieldDef], bool]] = {
    "ALL": lambda field: True,
    "NAME": lambda field: field.name in _NAME_FIELDS,
    "EMAIL": lambda field: field.type == "email",
    "PHONE": lambda field: field.type == "phone",
}
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_CLAUSE_WORDS = frozenset({"WHERE", "ORDER", "LIMIT", "OFFSET"})  # where a RETURNING field list ends
_FIND = re.compile(r"\s*FIND\b\s*", re.IGNORECASE)
_TERM_TOKEN = re.compile(r"(?:[^\W_]|[*?])+")  # letters and digits, wildcards included
_WILDCARDS = {"*": r"[^\W_]*", "?": r"[^\W_]"}
_SOQL_ERROR_AT = re.compile(r"ERROR at Row:1:Column:(\d+)\n(.*)\Z", re.DOTALL)

Matcher = Callable[[list[str]], bool]  # (part of) the term, over the searched values of one record


@dataclass(frozen=True)
class _TermToken:
    kind: str  # "word", "phrase", "(", ")" or an operator: "AND", "OR", "NOT"
    text: str  # escapes resolved
    pos: int


@dataclass(frozen=True)
class _Returning:
    """One RETURNING item: its field list and SOQL clauses as written, with their offsets in the SOSL."""

    name: str
    name_pos: int | None = None
    fields: str = "Id"
    fields_pos: int | None = None
    clauses: str = ""
    clauses_pos: int | None = None

    def as_soql(self) -> tuple[str, list[tuple[int, int, int]]]:
        """The equivalent SOQL query on one row, and its pieces written in the SOSL as
        (SOQL offset, SOSL offset, length)."""
        soql, segments = "", []
        pieces = (("SELECT ", None), (self.fields, self.fields_pos), (" FROM ", None), (self.name, self.name_pos),
                  (" ", None), (self.clauses, self.clauses_pos))
        for text, pos in pieces:
            if pos is not None:
                segments.append((len(soql), pos, len(text)))
            soql += text.replace("\n", " ")  # one row, so SOQL error columns are offsets
        return soql.rstrip(), segments


@dataclass(frozen=True)
class SearchStatement:
    matcher: Matcher
    scope: str  # a key of _SCOPES
    returning: list[_Returning]
    limit: int
    token_starts: list[int]


def search(sosl: str | None, queries: QueryEngine, store: Store, api_version: str) -> dict:
    """The answer of ``GET search/?q=``: ``{"searchRecords": [...]}`` in RETURNING order; RequestError if invalid."""
    if not sosl:
        raise RequestError(400, MALFORMED_SEARCH, "A search string has to be specified")
    try:
        statement = parse_search(sosl)
    except SoqlError as error:
        raise RequestError(400, error.error_code, str(error)) from None
    compiled = [_compile(item, sosl, statement.token_starts, queries) for item in statement.returning]
    now = store.clock.now_datetime()  # date literals on the emulator clock
    found: list[dict] = []
    for query in compiled:
        fields = _searched_fields(query.sobject, statement.scope)
        matching = [record for record in store.rows(query.sobject, include_deleted=False)
                    if statement.matcher([value for value in map(record.get, fields) if value])]
        found += [query.project(record, store.lookup, api_version)
                  for record in query.run(matching, store.lookup, now=now)]
    return {"searchRecords": found[:statement.limit]}


def parse_search(sosl: str) -> SearchStatement:
    """Parse a SOSL statement; raise ``SoqlError`` with Salesforce's code and message if it is invalid."""
    find = _FIND.match(sosl)
    if find is None:
        start = len(sosl) - len(sosl.lstrip())
        word = sosl.split(None, 1)[0] if sosl.strip() else "<EOF>"
        raise positioned_error(MALFORMED_SEARCH, f"unexpected token: '{word}'", sosl, start)
    if not sosl.startswith("{", find.end()):
        raise _mismatched(sosl, find.end(), "{")
    term_tokens, term_end = _read_term(sosl, find.end() + 1)
    term = _TermParser(sosl, term_tokens, term_end - 1)
    matcher = term.parse()
    rest = _StatementParser(sosl, term_end)
    scope, returning, limit = rest.parse()
    if matcher is None or term.characters < MIN_TERM_CHARACTERS:
        raise SoqlError(INVALID_SEARCH, "search term must be longer than one character: "
                        + sosl[find.end() + 1:term_end - 1])
    return SearchStatement(matcher, scope, returning, limit, rest.token_starts)


def _searched_fields(sobject: str, scope: str) -> list[str]:
    in_scope = _SCOPES[scope]
    return [field.name for field in schema.OBJECTS[sobject].fields.values()
            if field.type in _TEXT_TYPES and in_scope(field)]


# --- the term between the braces -------------------------------------------------------------------

def _mismatched(sosl: str, pos: int, expected: str) -> SoqlError:
    char = sosl[pos] if pos < len(sosl) else "<EOF>"
    row_start = sosl.rfind("\n", 0, pos) + 1
    row, column = sosl.count("\n", 0, pos) + 1, pos - row_start
    # Salesforce's lexer counts columns from 0 and its "ERROR at ... Column" repeats that number,
    # so the caret sits one character to the left
    return positioned_error(MALFORMED_SEARCH, f"line {row}:{column} mismatched character '{char}' expecting "
                            f"'{expected}'", sosl, max(pos - 1, row_start))


def _read_term(sosl: str, start: int) -> tuple[list[_TermToken], int]:
    """The tokens of the term starting at ``start`` (after ``{``) and the offset after its closing ``}``."""
    tokens: list[_TermToken] = []
    i = start
    while i < len(sosl) and sosl[i] != "}":
        char = sosl[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_TermToken(char, char, i))
            i += 1
        elif char == '"':
            text, end = _read_text(sosl, i + 1, in_phrase=True)
            if not sosl.startswith('"', end):
                raise _mismatched(sosl, end, '"')
            tokens.append(_TermToken("phrase", text, i))
            i = end + 1
        else:
            text, end = _read_text(sosl, i, in_phrase=False)
            kind = text.upper() if text.upper() in _OPERATORS and text == sosl[i:end] else "word"
            tokens.append(_TermToken(kind, text, i))
            i = end
    if i >= len(sosl):
        raise _mismatched(sosl, i, "}")
    return tokens, i + 1


def _read_text(sosl: str, i: int, *, in_phrase: bool) -> tuple[str, int]:
    """A word's (or phrase's) text from ``i`` and the offset where it ends.  An escaped letter or digit
    stays; escaped punctuation turns into a space, as it only separates tokens (``\\*`` is no wildcard)."""
    chars = []
    while i < len(sosl):
        char = sosl[i]
        if char in '"}' or (not in_phrase and (char.isspace() or char in "()")):
            break
        if char == "\\" and i + 1 < len(sosl):
            escaped = sosl[i + 1]
            chars.append(escaped if escaped.isalnum() else " ")
            i += 2
            continue
        if char in _RESERVED:
            raise _mismatched(sosl, i, "}")
        chars.append(char)
        i += 1
    return "".join(chars), i


class _TermParser:
    """Grammar: ``any := all (OR all)*``, ``all := unary ([AND [NOT]] unary)*``,
    ``unary := '(' any ')' | word | phrase``.  Yields None for a part without letters or digits
    (nothing the index holds), which is left out of its AND / OR."""

    def __init__(self, sosl: str, tokens: list[_TermToken], closing_brace: int):
        self.sosl = sosl
        self.tokens = tokens
        self.closing_brace = closing_brace
        self.index = 0
        self.characters = 0  # letters and digits searched for (Salesforce wants at least two)

    def parse(self) -> Matcher | None:
        matcher = self.any_of()
        if self.index < len(self.tokens):
            raise self.unexpected()
        return matcher

    def at(self, *kinds: str) -> bool:
        return self.index < len(self.tokens) and self.tokens[self.index].kind in kinds

    def accept(self, kind: str) -> bool:
        if self.at(kind):
            self.index += 1
            return True
        return False

    def unexpected(self) -> SoqlError:
        if self.index < len(self.tokens):
            token = self.tokens[self.index]
            return positioned_error(MALFORMED_SEARCH, f"unexpected token: '{token.text}'", self.sosl, token.pos)
        return positioned_error(MALFORMED_SEARCH, "unexpected token: '}'", self.sosl, self.closing_brace)

    def any_of(self) -> Matcher | None:
        parts = [self.all_of()]
        while self.accept("OR"):
            parts.append(self.all_of())
        return _any(parts)

    def all_of(self) -> Matcher | None:
        required, excluded = [self.unary()], []
        while self.at("word", "phrase", "(", "AND"):
            if self.accept("AND") and self.accept("NOT"):
                excluded.append(self.unary())
            else:
                required.append(self.unary())
        return _all(required, excluded)

    def unary(self) -> Matcher | None:
        if self.accept("("):
            matcher = self.any_of()
            if not self.accept(")"):
                raise self.unexpected()
            return matcher
        if not self.at("word", "phrase"):
            raise self.unexpected()
        self.index += 1
        return self.words(self.tokens[self.index - 1].text)

    def words(self, text: str) -> Matcher | None:
        """Whether one field holds the text's tokens in order (whole tokens, wildcards inside them)."""
        tokens = _TERM_TOKEN.findall(text)
        self.characters += sum(char.isalnum() for token in tokens for char in token)
        if not tokens:
            return None
        in_order = r"[\W_]+".join("".join(_WILDCARDS.get(char) or re.escape(char) for char in token)
                                  for token in tokens)
        regex = re.compile(rf"(?<![^\W_]){in_order}(?![^\W_])", re.IGNORECASE)
        return lambda values: any(regex.search(value) for value in values)


def _any(parts: list[Matcher | None]) -> Matcher | None:
    kept = [part for part in parts if part is not None]
    if not kept:
        return None
    return lambda values: any(part(values) for part in kept)


def _all(required: list[Matcher | None], excluded: list[Matcher | None]) -> Matcher | None:
    must = [part for part in required if part is not None]
    must_not = [part for part in excluded if part is not None]
    if not must and not must_not:
        return None
    return lambda values: all(part(values) for part in must) and not any(part(values) for part in must_not)


# --- after the term: IN ... FIELDS, RETURNING, LIMIT ------------------------------------------------

def _end(token: Token) -> int:
    return token.pos + len(token.text)


class _StatementParser(TokenCursor):
    error_code = MALFORMED_SEARCH

    def __init__(self, sosl: str, start: int):
        try:  # padded with spaces so token offsets are offsets in the statement
            tokens = tokenize(" " * start + sosl[start:])
        except SoqlError as error:
            raise SoqlError(MALFORMED_SEARCH, error.message) from None
        super().__init__(sosl, tokens, [token.pos for token in tokens])

    def accept(self, text: str) -> bool:
        if self.at_keyword(text) or self.at_symbol(text):
            self.advance()
            return True
        return False

    def parse(self) -> tuple[str, list[_Returning], int]:
        scope = self.scope() if self.accept("IN") else "ALL"
        returning = [_Returning(name) for name in SEARCHED_WITHOUT_RETURNING]
        if self.accept("RETURNING"):
            returning = [self.returning()]
            while self.accept(","):
                returning.append(self.returning())
        limit = self.integer() if self.accept("LIMIT") else DEFAULT_LIMIT
        if self.current.kind != EOF:
            raise self.unexpected()
        return scope, returning, limit

    def scope(self) -> str:
        token = self.current
        if token.kind != IDENT or token.upper not in _SCOPES:
            raise self.unexpected()
        self.advance()
        if not self.accept("FIELDS"):
            raise self.unexpected()
        return token.upper

    def integer(self) -> int:
        token = self.current
        if token.kind != NUMBER or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)

    def returning(self) -> _Returning:
        name = self.current
        if name.kind != IDENT:
            raise self.unexpected()
        self.advance()
        if not self.accept("("):
            return _Returning(name.text, name.pos)
        fields, clauses, closing = self.parenthesized()
        if not fields:
            raise self.unexpected(clauses[0] if clauses else closing)
        clauses_text, clauses_pos = (self.text[clauses[0].pos:_end(clauses[-1])], clauses[0].pos) if clauses \
            else ("", None)
        return _Returning(name.text, name.pos, self.text[fields[0].pos:_end(fields[-1])], fields[0].pos,
                          clauses_text, clauses_pos)

    def parenthesized(self) -> tuple[list[Token], list[Token], Token]:
        """The field list's tokens, the clauses' tokens (from WHERE/ORDER/LIMIT/OFFSET) and the closing ``)``."""
        fields: list[Token] = []
        clauses: list[Token] = []
        depth = 0
        while depth or not (self.current.kind == SYMBOL and self.current.text == ")"):
            token = self.advance()
            if token.kind == EOF:
                raise self.unexpected(token)
            if token.kind == SYMBOL and token.text in "()":
                depth += 1 if token.text == "(" else -1
            starts_clause = depth == 0 and token.kind == IDENT and token.upper in _CLAUSE_WORDS
            (clauses if clauses or starts_clause else fields).append(token)
        return fields, clauses, self.advance()


# --- RETURNING items as SOQL ------------------------------------------------------------------------

def _compile(item: _Returning, sosl: str, token_starts: list[int], queries: QueryEngine) -> CompiledQuery:
    soql, segments = item.as_soql()
    try:
        compiled = queries.compile(soql)
    except RequestError as error:
        raise _in_sosl(error, sosl, token_starts, segments) from None
    if compiled.is_count or compiled.is_aggregate or compiled.has_child_queries:
        raise RequestError(400, MALFORMED_SEARCH, f"RETURNING {compiled.sobject}: only fields, WHERE, ORDER BY, "
                                                  "LIMIT and OFFSET are allowed (no aggregates or subqueries)")
    return compiled


def _in_sosl(error: RequestError, sosl: str, token_starts: list[int],
             segments: list[tuple[int, int, int]]) -> RequestError:
    """A SOQL error of a RETURNING item as SOSL reports it: syntax errors are MALFORMED_SEARCH, and the
    quoted row and caret are the statement's."""
    code = MALFORMED_SEARCH if error.error_code == MALFORMED_QUERY else error.error_code
    located = _SOQL_ERROR_AT.search(error.message)
    if located is None:
        return RequestError(error.status, code, error.message)
    soql_pos = int(located[1]) - 1
    # text the SOSL does not hold ("SELECT ", " FROM ") maps to the end of the piece before it
    soql_start, sosl_start, length = ([s for s in segments if s[0] <= soql_pos] or segments[:1])[-1]
    pos = sosl_start + max(0, min(soql_pos - soql_start, length))
    return RequestError(error.status, code, str(positioned_error(code, located[2], sosl, pos, token_starts)))

"""SOQL tokenizer and the ``SoqlError`` exception with Salesforce's error text layout.

Salesforce reports most query errors as::

    \\n<the erroneous row of the query, from a few tokens before the error>\\n<spaces>^\\n
    ERROR at Row:<r>:Column:<c>\\n<message>

so every token keeps its offset in the query text and errors are raised with that offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MALFORMED_QUERY = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_TYPE = "INVALID_TYPE"
INVALID_QUERY_FILTER_OPERATOR = "INVALID_QUERY_FILTER_OPERATOR"
NUMBER_OUTSIDE_VALID_RANGE = "NUMBER_OUTSIDE_VALID_RANGE"

# How far left of the error the quoted row starts (whole tokens only), as Salesforce trims long rows.
_CONTEXT_CHARS = 40


class SoqlError(Exception):
    """A query Salesforce would reject; ``str(error)`` is Salesforce's message, ``error_code`` its code."""

    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    def __str__(self) -> str:
        return self.message


# Token kinds
IDENT = "IDENT"  # names and keywords alike; the parser decides by position
STRING = "STRING"
NUMBER = "NUMBER"
DATETIME = "DATETIME"
DATE = "DATE"
SYMBOL = "SYMBOL"  # ( ) , . :
OPERATOR = "OPERATOR"  # = != <> < <= > >=
EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # the source text of the token
    pos: int  # offset in the query
    value: object = None  # decoded value: str for STRING (escapes applied), the text for others
    like_pattern: str | None = None  # STRING only: a regex for LIKE (\% and \_ are literal there)

    @property
    def upper(self) -> str:
        return self.text.upper()

    def display(self) -> str:
        return "<EOF>" if self.kind == EOF else self.text


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w:])")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_SYMBOLS = "(),.:"
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


def _row_and_column(query: str, pos: int) -> tuple[int, int, int]:
    """(row, column, start offset of the row), row and column 1-based."""
    row_start = query.rfind("\n", 0, pos) + 1
    return query.count("\n", 0, pos) + 1, pos - row_start + 1, row_start


def positioned_error(
    error_code: str, message: str, query: str, pos: int, token_starts: list[int] | None = None
) -> SoqlError:
    """A ``SoqlError`` whose text quotes the row of the query with a caret under offset ``pos``."""
    row, column, row_start = _row_and_column(query, pos)
    row_end = query.find("\n", pos)
    if row_end == -1:
        row_end = len(query)
    show_from = row_start
    if pos - row_start > _CONTEXT_CHARS and token_starts:
        show_from = min((s for s in token_starts if pos - _CONTEXT_CHARS <= s <= pos), default=pos)
    shown = query[show_from:row_end]
    caret = " " * (pos - show_from) + "^"
    return SoqlError(error_code, f"\n{shown}\n{caret}\nERROR at Row:{row}:Column:{column}\n{message}")


def _read_string(query: str, start: int) -> tuple[str, str, int]:
    """Decode the quoted literal starting at ``start``; returns (value, LIKE regex, end offset)."""
    quote = query[start]
    value: list[str] = []
    pattern: list[str] = []
    i = start + 1
    length = len(query)
    while i < length:
        char = query[i]
        if char == quote:
            return "".join(value), "".join(pattern), i + 1
        if char == "\\":
            if i + 1 >= length:
                break
            code = query[i + 1]
            if code in _SIMPLE_ESCAPES:
                value.append(_SIMPLE_ESCAPES[code])
                pattern.append(re.escape(_SIMPLE_ESCAPES[code]))
                i += 2
            elif code in "%_":
                # wildcard escapes mean the literal character in LIKE; elsewhere the backslash stays
                value.append("\\" + code)
                pattern.append(re.escape(code))
                i += 2
            elif code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", query[i + 2 : i + 6]):
                decoded = chr(int(query[i + 2 : i + 6], 16))
                value.append(decoded)
                pattern.append(re.escape(decoded))
                i += 6
            else:
                literal = query[start : query.find(quote, i + 2) + 1 or length]
                raise SoqlError(
                    MALFORMED_QUERY,
                    f"Invalid string literal '{literal}'. Illegal character sequence '\\{code}' in string literal.",
                )
            continue
        value.append(char)
        pattern.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    row, column, _ = _row_and_column(query, length)
    raise SoqlError(MALFORMED_QUERY, f"line {row}:{column - 1} mismatched character '<EOF>' expecting '{quote}'")


def tokenize(query: str) -> list[Token]:
    """Split a SOQL query into tokens (the last one is EOF); raise MALFORMED_QUERY on stray characters."""
    tokens: list[Token] = []
    i = 0
    length = len(query)
    while i < length:
        char = query[i]
        if char.isspace():
            i += 1
            continue
        if char in "'\"":
            value, pattern, end = _read_string(query, i)
            tokens.append(Token(STRING, query[i:end], i, value, pattern))
            i = end
            continue
        if char.isdigit() or (char in "+-." and i + 1 < length and query[i + 1].isdigit()):
            for kind, regex in ((DATETIME, _DATETIME), (DATE, _DATE), (NUMBER, _NUMBER)):
                match = regex.match(query, i)
                if match:
                    tokens.append(Token(kind, match.group(0), i, match.group(0)))
                    i = match.end()
                    break
            continue
        match = _IDENT.match(query, i)
        if match:
            tokens.append(Token(IDENT, match.group(0), i, match.group(0)))
            i = match.end()
            continue
        operator = next((op for op in _OPERATORS if query.startswith(op, i)), None)
        if operator:
            tokens.append(Token(OPERATOR, operator, i, operator))
            i += len(operator)
            continue
        if char in _SYMBOLS:
            tokens.append(Token(SYMBOL, char, i, char))
            i += 1
            continue
        row, column, _ = _row_and_column(query, i)
        raise SoqlError(MALFORMED_QUERY, f"line {row}:{column - 1} no viable alternative at character '{char}'")
    tokens.append(Token(EOF, "", length))
    return tokens

"""Flower's task search syntax (`GET /api/tasks?search=...`) turned into one SQL condition.

The grammar is Flower 2.x's: terms joined by AND (or juxtaposition) and OR, parentheses
up to five deep, "quoted phrases" (with \\" and \\\\ escapes), and `field:value` terms on
name, state, worker, args, kwargs or result. A bare term matches the id, name, state,
worker, args, kwargs or result; `state:` matches exactly, `kwargs:key=value` one keyword
argument, anything else a substring of at least three characters, all case-insensitively.
Flower's limits and refusals are kept (NOT and -term unsupported), each as a 400 naming
`search`. Values are bound parameters; LIKE wildcards in them are taken literally.
"""
from __future__ import annotations

from sqlalchemy import and_, or_

from lookout.core.store.models import Task
from lookout.dashboard.web.errors import bad_parameter

tasks = Task.__table__

FIELDS = ("name", "state", "worker", "args", "kwargs", "result")
ANY_FIELD = ("uuid",) + FIELDS
MIN_SUBSTRING = 3
MAX_LENGTH = 2048
MAX_TOKENS = 128
MAX_DEPTH = 5


def _refuse(message: str, position: int | None = None):
    where = f" at position {position}" if position is not None else ""
    return bad_parameter("search", f"{message}{where}")


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, position) tuples: LPAREN, RPAREN, AND, OR, TERM, then EOF."""
    tokens: list[tuple[str, str, int]] = []
    i, end = 0, len(text)
    while i < end:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] in "()":
            tokens.append(("LPAREN" if text[i] == "(" else "RPAREN", text[i], start))
            i += 1
        else:
            chars, quoted, in_quote = [], False, False
            while i < end:
                char = text[i]
                if char == "\\" and i + 1 < end and text[i + 1] in '"\\':
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if char == '"':
                    quoted, in_quote = True, not in_quote
                    i += 1
                    continue
                if not in_quote and (char.isspace() or char in "()"):
                    break
                chars.append(char)
                i += 1
            if in_quote:
                raise _refuse("unterminated quoted phrase", start)
            value = "".join(chars)
            if not value:
                raise _refuse("empty search term", start)
            if value == "NOT" and not quoted:
                raise _refuse("NOT is not supported", start)
            kind = value if value in ("AND", "OR") and not quoted else "TERM"
            tokens.append((kind, value, start))
        if len(tokens) > MAX_TOKENS:
            raise _refuse(f"more than {MAX_TOKENS} tokens")
    tokens.append(("EOF", "", end))
    return tokens


class _Parser:
    """Recursive descent over the tokens, building SQL as it goes."""

    def __init__(self, tokens, dialect: str):
        self.tokens, self.at, self.dialect = tokens, 0, dialect

    def peek(self) -> str:
        return self.tokens[self.at][0]

    def take(self):
        token = self.tokens[self.at]
        self.at += 1
        return token

    def either(self, depth: int):
        parts = [self.both(depth)]
        while self.peek() == "OR":
            operator = self.take()
            if self.peek() in ("EOF", "RPAREN", "AND", "OR"):
                raise _refuse("OR must be followed by a search term", operator[2])
            parts.append(self.both(depth))
        return parts[0] if len(parts) == 1 else or_(*parts)

    def both(self, depth: int):
        parts = [self.primary(depth)]
        while self.peek() not in ("EOF", "RPAREN", "OR"):
            if self.peek() == "AND":
                operator = self.take()
                if self.peek() in ("EOF", "RPAREN", "AND", "OR"):
                    raise _refuse("AND must be followed by a search term", operator[2])
            parts.append(self.primary(depth))
        return parts[0] if len(parts) == 1 else and_(*parts)

    def primary(self, depth: int):
        kind, value, position = self.take()
        if kind == "LPAREN":
            if depth >= MAX_DEPTH:
                raise _refuse(f"nesting deeper than {MAX_DEPTH} levels", position)
            if self.peek() == "RPAREN":
                raise _refuse("empty group", position)
            inner = self.either(depth + 1)
            if self.take()[0] != "RPAREN":
                raise _refuse("missing closing parenthesis", position)
            return inner
        if kind != "TERM":
            raise _refuse(f"expected a search term, not {value!r}", position)
        return term(value, position, self.dialect)


def term(text: str, position: int, dialect: str):
    """One term's condition: `field:value`, or a bare value over every field."""
    field, value = None, text
    if ":" in text:
        candidate, rest = text.split(":", 1)
        if candidate.casefold() in FIELDS:
            field, value = candidate.casefold(), rest
    if field is None and value.startswith("-"):
        raise _refuse("negation with '-' is not supported", position)
    if not value:
        raise _refuse("a field qualifier needs a value", position)
    if field == "state":
        return tasks.c.state == value.strip().upper()
    if field == "kwargs" and "=" in value:
        return keyword(value, dialect)
    if len(value.strip()) < MIN_SUBSTRING:
        raise _refuse(f"substring terms need at least {MIN_SUBSTRING} characters", position)
    return or_(*(contains(tasks.c[name], value, dialect)
                 for name in ((field,) if field else ANY_FIELD)))


def keyword(pair: str, dialect: str):
    """`key=value` against the kwargs repr ({'key': value, ...}): the value bare or quoted,
    ending at the next item or the closing brace, so key=1 does not match 'key': 10."""
    key, value = (part.strip() for part in pair.split("=", 1))
    return or_(*(contains(tasks.c.kwargs, f"'{key}': {shown}{end}", dialect)
                 for shown in (value, f"'{value}'") for end in (",", "}")))


def contains(column, value: str, dialect: str):
    """Case-insensitive substring match with % and _ taken literally."""
    pattern = "%" + value.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    if dialect == "sqlite":  # SQLite's LIKE already ignores ASCII case
        return column.like(pattern, escape="/")
    return column.ilike(pattern, escape="/")


def condition(text: str, dialect: str):
    """The SQL condition for a Flower search, or None when it matches everything."""
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise _refuse(f"longer than {MAX_LENGTH} characters")
    parser = _Parser(tokenize(text), dialect)
    if parser.peek() == "EOF":
        return None
    expression = parser.either(0)
    kind, value, position = parser.take()
    if kind != "EOF":
        raise _refuse(f"unexpected {value!r}", position)
    return expression

"""The syntax of `data.filter` (row_filter.py evaluates it): a tokenizer and a recursive-descent parser.

pandas' `DataFrame.eval`/`query` run attribute access and calls, so a shared config.yaml could execute code.
This grammar has no names besides columns and keywords, no calls, no attributes and no arithmetic:

    filter     := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | test
    test       := field ("==" | "!=" | "<" | "<=" | ">" | ">=") value
                | field ["not"] "in" "[" value ("," value)* "]"
                | field "is" ["not"] "missing"
    field      := identifier (letters, digits, _) | `any column name` in backticks, never starting with "__"
    value      := number (-12, 3.5, 1e-3) | 'text' | "text" (no escapes) | true | false
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

EXAMPLE = "e.g. 'smoking == \"current\" and age >= 40'"
COMPARISONS: dict[str, Callable] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
KEYWORDS = {"and", "or", "not", "in", "is", "missing", "true", "false"}
MAX_DEPTH = 50  # nested parentheses / nots; a bound keeps hostile input from reaching Python's recursion limit
TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_]\w*)
      | (?P<quoted>`[^`\n]+`)
      | (?P<text>'[^'\n]*'|"[^"\n]*")
      | (?P<operator>==|!=|<=|>=|<|>)
      | (?P<punctuation>[()\[\],])""",
    re.VERBOSE | re.ASCII,
)
SMALL_INTEGER = re.compile(r"-?\d{1,15}")  # exact as a float64; longer literals are read as floats
HINTS = {  # what a pandas/Python habit means in this grammar
    ".": "attribute access and method calls are not part of the filter language",
    "&": "write 'and'",
    "|": "write 'or'",
    "~": "write 'not'",
    "=": "write '==' to compare",
    "@": "local variables are not part of the filter language",
}

Value = float | int | str | bool


@dataclass(frozen=True)
class Comparison:
    field: str
    operator: str  # one of COMPARISONS
    value: Value


@dataclass(frozen=True)
class Membership:
    field: str
    values: tuple[Value, ...]
    negated: bool  # `not in`


@dataclass(frozen=True)
class MissingTest:
    field: str
    negated: bool  # `is not missing`


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]  # flat, so a long chain of `and`s is not a deep tree


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Membership | MissingTest | Not | And | Or


@dataclass(frozen=True)
class Token:
    kind: str  # a TOKEN group name, "keyword", or "end"
    text: str
    position: int  # 0-based character offset into the filter


def tokenize(text: str) -> list[Token]:
    """The filter's tokens, ending with an "end" token; ValueError at the first character outside the grammar."""
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            character = text[position]
            hint = HINTS.get(character, "not part of the filter language")
            _syntax_error(text, position, f"unexpected {character!r}", hint)
        kind, word = match.lastgroup or "", match.group()
        if kind == "name" and word in KEYWORDS:
            kind = "keyword"
        if kind in ("name", "quoted") and word.strip("`").startswith("__"):
            _syntax_error(text, position, f"names starting with '__' are not allowed ({word})")
        if kind != "space":
            tokens.append(Token(kind, word, position))
        position = match.end()
    return [*tokens, Token("end", "", len(text))]


def parse_row_filter(text: str) -> Node:
    """The syntax tree of a data.filter string; a one-line ValueError naming the position when it is not valid."""
    parser = _Parser(text, tokenize(text))
    tree = parser.disjunction(0)
    if parser.peek().kind != "end":
        parser.fail("expected 'and', 'or' or the end of the filter")
    return tree


class _Parser:
    """Recursive descent over the token list: one method per rule of the grammar in the module docstring."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text, self.tokens, self.index = text, tokens, 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += token.kind != "end"
        return token

    def accept(self, keyword: str) -> bool:
        if self.peek().kind == "keyword" and self.peek().text == keyword:
            self.index += 1
            return True
        return False

    def fail(self, expected: str) -> NoReturn:
        token = self.peek()
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        _syntax_error(self.text, token.position, f"{expected}, found {found}")

    def disjunction(self, depth: int) -> Node:
        operands = [self.conjunction(depth)]
        while self.accept("or"):
            operands.append(self.conjunction(depth))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self, depth: int) -> Node:
        operands = [self.negation(depth)]
        while self.accept("and"):
            operands.append(self.negation(depth))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            _syntax_error(self.text, self.peek().position, f"nested deeper than {MAX_DEPTH} levels")
        if self.accept("not"):
            return Not(self.negation(depth + 1))
        if self.peek().text == "(":
            self.take()
            tree = self.disjunction(depth + 1)
            if self.peek().text != ")":
                self.fail("expected ')'")
            self.take()
            return tree
        return self.test()

    def test(self) -> Node:
        token = self.peek()
        if token.kind not in ("name", "quoted"):
            self.fail("expected a column name, 'not' or '('")
        field = self.take().text.strip("`")
        if self.peek().kind == "operator":
            symbol = self.take().text
            return Comparison(field, symbol, self.value(f"after {symbol!r}"))
        if self.accept("is"):
            negated = self.accept("not")
            if not self.accept("missing"):
                self.fail(f"expected 'missing' after 'is{' not' if negated else ''}'")
            return MissingTest(field, negated)
        negated = self.accept("not")
        if self.accept("in"):
            return Membership(field, self.values(), negated)
        if negated:
            self.fail("expected 'in' after 'not'")
        self.fail(f"expected a test (==, !=, <, <=, >, >=, in, not in, is missing) after {field!r}")

    def values(self) -> tuple[Value, ...]:
        if self.peek().text != "[":
            self.fail("expected '[' after 'in'")
        self.take()
        values = [self.value("after '['")]
        while self.peek().text == ",":
            self.take()
            values.append(self.value("after ','"))
        if self.peek().text != "]":
            self.fail("expected ',' or ']' in the list")
        self.take()
        return tuple(values)

    def value(self, after: str) -> Value:
        token = self.peek()
        if token.kind == "number":
            self.take()
            return int(token.text) if SMALL_INTEGER.fullmatch(token.text) else float(token.text)
        if token.kind == "text":
            self.take()
            return token.text[1:-1]
        if token.kind == "keyword" and token.text in ("true", "false"):
            self.take()
            return token.text == "true"
        self.fail(f"expected a value (number, 'text', true or false) {after}")


def _syntax_error(text: str, position: int, message: str, hint: str = "") -> NoReturn:
    hint = f" ({hint})" if hint else ""
    raise ValueError(f"data.filter={text!r}: {message} at character {position + 1}{hint}; {EXAMPLE}")

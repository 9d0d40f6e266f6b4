"""Go's ``text/template``, as Docker's ``--format``/``-f`` flags use it, so
scripts written for Docker print the same bytes here: actions, trim markers,
comments, pipelines, variables, ``if``/``range``/``with``/``else``,
``define``/``template``/``block``, ``break``/``continue``, Go's builtin
functions and Docker's (``json join split lower upper title pad
truncate``), Go's printing of values (``map[a:1]``, ``[a b]``,
``<no value>``), Docker's ``table`` directive aligned as ``tabwriter`` does,
and Docker's ``\\t``/``\\n`` escapes in the template's own text.

A template that does not parse, names an unknown function, or fails while
running is a ``TemplateError`` (exit 125) whose message reads as Docker's
(``template parsing error: template: :1: function "foo" not defined``) —
never text echoed back. ``parse`` checks a template once; ``render`` and
``render_table`` are what the commands call. Value printing lives in
``runner.cli.gofmt``."""
from __future__ import annotations

import bisect
import inspect
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import DockishError
from . import gofmt


class TemplateError(DockishError):
    """A template that does not parse or fails while running; the message is
    Docker's, ``template parsing error: template: ...`` on one line."""

    def __init__(self, go_message: str) -> None:
        self.go_message = go_message.replace("\n", "\\n")
        super().__init__("template parsing error: " + self.go_message)


class _Missing:
    """Go's invalid ``reflect.Value``: a missing map key or no data. Prints
    as ``<no value>``; a field of it is missing too (not an error)."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class Context(dict):
    """A list row as Docker's formatters give it to a template: a Go struct
    (``*formatter.ContainerContext`` ...), not a map, so a field it lacks is
    an error naming that type (a misspelt ``{{.Nmae}}`` fails instead of
    printing ``<no value>`` that a script would take for data)."""

    def __init__(self, fields: dict, go_type: str) -> None:
        super().__init__(fields)
        self.go_type = go_type


_NO_FINAL: Any = object()           # a command with no piped-in value
MAX_DEPTH = 100000                  # Go's maxExecDepth for nested {{template}}

# ================================================================== lexer


class Tok(NamedTuple):
    typ: str
    val: Any
    pos: int
    line: int


_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range",
             "template", "with", "nil"}
_SPACE = " \t\r\n"
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
    r"|0[oO][0-7_]+|0[bB][01_]+"
    r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})"
                     r"|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
           "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def _unescape_text(text: str) -> str:
    """Docker's CLI turns ``\\t``/``\\n`` in a format into a tab/newline."""
    return text.replace("\\t", "\t").replace("\\n", "\n")


def _unquote(body: str) -> str:
    """A Go quoted string's or char's body with its escapes applied; an
    escape Go does not know is a syntax error."""
    out, pos = [], 0
    while (i := body.find("\\", pos)) >= 0:
        out.append(body[pos:i])
        m = _ESCAPE.match(body, i)
        if not m:
            raise ValueError("invalid syntax")
        simple, x, octal, u4, u8 = m.groups()
        if simple:
            out.append(_SIMPLE[simple])
        else:
            code = int(x or u4 or u8, 16) if not octal else int(octal, 8)
            if code > 0x10FFFF:
                raise ValueError("invalid syntax")
            out.append(chr(code))
        pos = m.end()
    out.append(body[pos:])
    return "".join(out)


class _LexError(Exception):
    def __init__(self, msg: str, line: int) -> None:
        super().__init__(msg)
        self.line = line


def _at_right(text: str, i: int) -> tuple[bool, bool]:
    """(a right delimiter starts at ``i``, it has a trim marker ``' -}}'``)."""
    if text[i:i + 1] and text[i] in _SPACE and text.startswith("-}}", i + 1):
        return True, True
    return text.startswith("}}", i), False


def _lex(text: str) -> list[Tok]:
    """The tokens of ``text``, as Go's lexer makes them (spaces inside
    actions are tokens: they separate a command's arguments)."""
    toks: list[Tok] = []
    pos, n = 0, len(text)
    newlines = [k for k, c in enumerate(text) if c == "\n"]

    def line_at(i: int) -> int:
        return 1 + bisect.bisect_left(newlines, i)

    trim_next = False
    while pos < n:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        chunk = _unescape_text(chunk)
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
            trim_next = False
        if start < 0:
            if chunk:
                toks.append(Tok("text", chunk, pos, line_at(pos)))
            break
        i = start + 2
        if text[i:i + 1] == "-" and text[i + 1:i + 2] and text[i + 1] in _SPACE:
            chunk = chunk.rstrip(_SPACE)
            i += 2
        if chunk:
            toks.append(Tok("text", chunk, pos, line_at(pos)))
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise _LexError("unclosed comment", line_at(start))
            k = end + 2
            right, trim = _at_right(text, k)
            if not right:
                raise _LexError("comment ends before closing delimiter", line_at(end))
            toks.append(Tok("comment", text[i:k], i, line_at(i)))
            pos = k + (4 if trim else 2)
            trim_next = trim
            continue
        toks.append(Tok("{{", "{{", start, line_at(start)))
        pos, trim_next = _lex_action(text, i, toks, line_at)
    toks.append(Tok("EOF", "", n, line_at(n)))
    return toks


def _lex_action(text: str, i: int, toks: list[Tok],
                line_at: Callable[[int], int]) -> tuple[int, bool]:
    """Tokens from ``i`` up to and including the action's right delimiter;
    returns the position after it and whether it trims following space."""
    n, depth = len(text), 0

    def emit(typ: str, val: Any, at: int) -> None:
        toks.append(Tok(typ, val, at, line_at(at)))

    def terminator(k: int) -> bool:
        return k >= n or text[k] in _SPACE + ".,|:)(" or _at_right(text, k)[0]

    while True:
        right, trim = _at_right(text, i)
        if right:
            if depth:
                raise _LexError("unclosed left paren", line_at(i))
            emit("}}", "}}", i)
            return i + (4 if trim else 2), trim
        if i >= n:
            raise _LexError("unclosed action", line_at(i))
        c = text[i]
        if c in _SPACE:
            k = i
            while k < n and text[k] in _SPACE and not _at_right(text, k)[1]:
                k += 1
            if k > i:
                emit("space", text[i:k], i)
                i = k
            else:                       # a space that starts ' -}}'
                continue
            continue
        if c == "=":
            emit("=", "=", i)
            i += 1
        elif c == ":":
            if text[i + 1:i + 2] != "=":
                raise _LexError("expected :=", line_at(i))
            emit(":=", ":=", i)
            i += 2
        elif c == "|":
            emit("|", "|", i)
            i += 1
        elif c == ",":
            emit(",", ",", i)
            i += 1
        elif c == "(":
            depth += 1
            emit("(", "(", i)
            i += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise _LexError("unexpected right paren", line_at(i))
            emit(")", ")", i)
            i += 1
        elif c in "\"'":
            k = _quoted_end(text, i)
            if k < 0:
                raise _LexError("unterminated quoted string" if c == '"' else
                                "unterminated character constant", line_at(i))
            emit("string" if c == '"' else "char", text[i:k + 1], i)
            i = k + 1
        elif c == "`":
            k = text.find("`", i + 1)
            if k < 0:
                raise _LexError("unterminated raw quoted string", line_at(i))
            emit("rawstring", text[i:k + 1], i)
            i = k + 1
        elif c == "$":
            m = _IDENT.match(text, i + 1)
            k = m.end() if m else i + 1
            if not terminator(k):
                raise _LexError(f"bad character {_u(text[k])}", line_at(k))
            emit("var", text[i:k], i)
            i = k
        elif c == "." and not text[i + 1:i + 2].isdigit():
            m = _IDENT.match(text, i + 1)
            if not m:
                emit("dot", ".", i)
                i += 1
                continue
            k = m.end()
            if not terminator(k):
                raise _LexError(f"bad character {_u(text[k])}", line_at(k))
            emit("field", text[i:k], i)
            i = k
        elif c in "+-." or c.isdigit():
            m = _NUMBER.match(text, i)
            k = m.end() if m else i
            if k == i or (k < n and (text[k].isalnum() or text[k] == "_")):
                k2 = k
                while k2 < n and (text[k2].isalnum() or text[k2] in "_.+-"):
                    k2 += 1
                raise _LexError(f"bad number syntax: {text[i:max(k2, i + 1)]!r}"
                                .replace("'", '"'), line_at(i))
            emit("number", text[i:k], i)
            i = k
        elif c.isalpha() or c == "_":
            m = _IDENT.match(text, i)
            assert m
            k, word = m.end(), m.group()
            if not terminator(k):
                raise _LexError(f"bad character {_u(text[k])}", line_at(k))
            if word in ("true", "false"):
                emit("bool", word == "true", i)
            elif word in _KEYWORDS:
                emit(word, word, i)
            else:
                emit("ident", word, i)
            i = k
        else:
            raise _LexError(f"bad character {_u(c)}", line_at(i))


def _quoted_end(text: str, i: int) -> int:
    """The index of the quote closing the one at ``i`` (escapes skipped),
    -1 if a newline or the end comes first."""
    k, q = i + 1, text[i]
    while k < len(text) and text[k] != q:
        if text[k] == "\n":
            return -1
        k += 2 if text[k] == "\\" else 1
    return k if k < len(text) else -1


def _u(c: str) -> str:
    """Go's ``%#U``: ``U+0023 '#'``."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


# ================================================================== nodes


@dataclass
class Node:
    pos: int


@dataclass
class Text(Node):
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Field(Node):
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass
class Variable(Node):
    idents: list[str]               # ["$x", "A", "B"] for $x.A.B

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass
class Ident(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class Const(Node):
    value: Any                      # bool, int, float, str; None for nil
    text: str
    kind: str                       # "bool" "number" "string" "nil" "dot"

    def __str__(self) -> str:
        return self.text


@dataclass
class Chain(Node):
    node: Node
    fields: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


@dataclass
class Command(Node):
    args: list[Node]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


@dataclass
class Pipe(Node):
    decl: list[str] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        s = " | ".join(map(str, self.cmds))
        if self.decl:
            s = ", ".join(self.decl) + (" = " if self.is_assign else " := ") + s
        return s


@dataclass
class Action(Node):
    pipe: Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(map(str, self.nodes))


@dataclass
class Control(Node):
    kind: str                       # "if" "range" "with"
    pipe: Pipe
    body: ListNode
    else_: ListNode | None

    def __str__(self) -> str:
        s = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.body)
        if self.else_ is not None:
            s += "{{else}}" + str(self.else_)
        return s + "{{end}}"


@dataclass
class TemplateCall(Node):
    name: str
    pipe: Pipe | None

    def __str__(self) -> str:
        return "{{template " + gofmt.quote(self.name) + \
            ("" if self.pipe is None else " " + str(self.pipe)) + "}}"


@dataclass
class Keyword(Node):
    word: str                       # "break" "continue" "end" "else"

    def __str__(self) -> str:
        return "{{" + self.word + "}}"


# ================================================================== parser


class _ParseError(Exception):
    pass


def _tok_str(t: Tok) -> str:
    """Go's item.String() for 'unexpected X in Y'."""
    if t.typ == "EOF":
        return "EOF"
    if t.typ in _KEYWORDS:
        return f"<{t.val}>"
    v = str(t.val) if t.typ != "bool" else ("true" if t.val else "false")
    return gofmt.quote(v[:10]) + "..." if len(v) > 10 else gofmt.quote(v)


class _Parser:
    """Go's text/template/parse, token for token (errors read as Go's)."""

    def __init__(self, text: str, name: str, funcs: set[str],
                 trees: dict[str, ListNode]) -> None:
        self.name, self.funcs, self.trees = name, funcs, trees
        try:
            self.toks = _lex(text)
        except _LexError as e:
            raise TemplateError(f"template: {name}:{e.line}: {e}") from None
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    # -- tokens
    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def peek(self) -> Tok:
        return self.toks[self.i]

    def backup(self, k: int = 1) -> None:
        self.i -= k

    def next_nonspace(self) -> Tok:
        t = self.next()
        while t.typ == "space":
            t = self.next()
        return t

    def peek_nonspace(self) -> Tok:
        t = self.next_nonspace()
        self.backup()
        return t

    def error(self, msg: str, tok: Tok | None = None) -> None:
        line = (tok or self.toks[max(self.i - 1, 0)]).line
        raise TemplateError(f"template: {self.name}:{line}: {msg}")

    def unexpected(self, t: Tok, context: str) -> None:
        self.error(f"unexpected {_tok_str(t)} in {context}", t)

    def expect(self, typ: str, context: str) -> Tok:
        t = self.next_nonspace()
        if t.typ != typ:
            self.unexpected(t, context)
        return t

    # -- structure
    def parse(self) -> ListNode:
        root = ListNode(0)
        while self.peek().typ != "EOF":
            if self.peek().typ == "{{":
                save = self.i
                self.next()
                if self.next_nonspace().typ == "define":
                    self.parse_definition()
                    continue
                self.i = save
            n = self.text_or_action()
            if isinstance(n, Keyword) and n.word in ("end", "else"):
                self.error(f"unexpected {n}")
            root.nodes.append(n)
        return root

    def parse_definition(self) -> None:
        t = self.next_nonspace()
        if t.typ not in ("string", "rawstring"):
            self.unexpected(t, "define clause")
        name = self.string_value(t)
        self.expect("}}", "define clause")
        saved, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end.word != "end":
            self.error(f"unexpected {end} in definition")
        self.add_tree(name, body)

    def add_tree(self, name: str, body: ListNode) -> None:
        """Go keeps an existing non-empty definition over an empty one."""
        if name in self.trees and _is_empty(body):
            return
        self.trees[name] = body

    def item_list(self) -> tuple[ListNode, Keyword]:
        lst = ListNode(self.peek_nonspace().pos)
        while self.peek_nonspace().typ != "EOF":
            n = self.text_or_action()
            if isinstance(n, Keyword) and n.word in ("end", "else"):
                return lst, n
            lst.nodes.append(n)
        self.error("unexpected EOF")
        raise AssertionError

    def text_or_action(self) -> Node:
        t = self.next_nonspace()
        if t.typ == "text":
            return Text(t.pos, t.val)
        if t.typ == "{{":
            return self.action()
        if t.typ == "comment":
            return Text(t.pos, "")
        self.unexpected(t, "input")
        raise AssertionError

    def action(self) -> Node:
        t = self.next_nonspace()
        if t.typ == "block":
            return self.block_control()
        if t.typ in ("break", "continue"):
            nt = self.next_nonspace()
            if nt.typ != "}}":
                self.unexpected(nt, "{{" + t.typ + "}}")
            if not self.range_depth:
                self.error(f"{{{{{t.typ}}}}} outside {{{{range}}}}", t)
            return Keyword(t.pos, t.typ)
        if t.typ == "else":
            p = self.peek_nonspace()
            if p.typ in ("if", "with"):
                return Keyword(p.pos, "else")
            self.expect("}}", "else")
            return Keyword(t.pos, "else")
        if t.typ == "end":
            self.expect("}}", "end")
            return Keyword(t.pos, "end")
        if t.typ in ("if", "range", "with"):
            return self.control(t.typ)
        if t.typ == "template":
            return self.template_control()
        self.backup()
        pipe = self.pipeline("command", "}}")
        return Action(pipe.pos, pipe)

    def control(self, kind: str) -> Control:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "}}")
        if kind == "range":
            self.range_depth += 1
        body, nxt = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_ = None
        if nxt.word == "else":
            if kind in ("if", "with") and self.peek().typ == kind:
                self.next()
                else_ = ListNode(nxt.pos, [self.control(kind)])
            else:
                else_, nxt = self.item_list()
                if nxt.word != "end":
                    self.error(f"expected end; found {nxt}")
        del self.vars[mark:]
        return Control(pipe.pos, kind, pipe, body, else_)

    def template_control(self) -> TemplateCall:
        t = self.next_nonspace()
        if t.typ not in ("string", "rawstring"):
            self.unexpected(t, "template clause")
        name = self.string_value(t)
        pipe = None
        if self.next_nonspace().typ != "}}":
            self.backup()
            pipe = self.pipeline("template clause", "}}")
        return TemplateCall(t.pos, name, pipe)

    def block_control(self) -> TemplateCall:
        t = self.next_nonspace()
        if t.typ not in ("string", "rawstring"):
            self.unexpected(t, "block clause")
        name = self.string_value(t)
        pipe = self.pipeline("block clause", "}}")
        saved, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end.word != "end":
            self.error("unexpected {{else}} in block clause")
        self.add_tree(name, body)
        return TemplateCall(t.pos, name, pipe)

    def string_value(self, t: Tok) -> str:
        if t.typ == "rawstring":
            return t.val[1:-1].replace("\r", "")
        try:
            return _unquote(t.val[1:-1])
        except ValueError as e:
            self.error(str(e), t)
            raise AssertionError from None

    # -- pipelines
    def pipeline(self, context: str, end: str) -> Pipe:
        pipe = Pipe(self.peek_nonspace().pos)
        while self.peek_nonspace().typ == "var":
            save = self.i
            v = self.next_nonspace()
            nxt = self.peek_nonspace()
            if nxt.typ in (":=", "="):
                self.next_nonspace()
                pipe.is_assign = nxt.typ == "="
                if pipe.is_assign and v.val not in self.vars:
                    self.error(f"undefined variable {gofmt.quote(v.val)}", v)
                pipe.decl.append(v.val)
                self.vars.append(v.val)
                break
            if nxt.typ == ",":
                self.next_nonspace()
                pipe.decl.append(v.val)
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_nonspace().typ in ("var", "}}", ")"):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            t = self.next_nonspace()
            if t.typ == end:
                if not pipe.cmds:
                    self.error(f"missing value for {context}", t)
                for k, c in enumerate(pipe.cmds[1:]):
                    if isinstance(c.args[0], Const):
                        self.error(f"non executable command in pipeline stage {k + 2}")
                return pipe
            if t.typ in ("bool", "char", "dot", "field", "ident", "number", "nil",
                         "rawstring", "string", "var", "("):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(t, context)

    def command(self) -> Command:
        cmd = Command(self.peek_nonspace().pos, [])
        while True:
            self.peek_nonspace()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            t = self.next()
            if t.typ == "space":
                continue
            if t.typ in ("}}", ")"):
                self.backup()
            elif t.typ != "|":
                self.unexpected(t, "operand")
            break
        if not cmd.args:
            self.error("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == "field":
            fields = []
            while self.peek().typ == "field":
                fields.append(self.next().val[1:])
            if isinstance(node, Field):
                return Field(node.pos, node.idents + fields)
            if isinstance(node, Variable):
                return Variable(node.pos, node.idents + fields)
            if isinstance(node, Const):
                self.error(f"unexpected . after term {gofmt.quote(str(node))}")
            return Chain(node.pos, node, fields)
        return node

    def term(self) -> Node | None:
        t = self.next_nonspace()
        if t.typ == "ident":
            if t.val not in self.funcs:
                self.error(f"function {gofmt.quote(t.val)} not defined", t)
            return Ident(t.pos, t.val)
        if t.typ == "dot":
            return Const(t.pos, None, ".", "dot")
        if t.typ == "nil":
            return Const(t.pos, None, "nil", "nil")
        if t.typ == "var":
            if t.val not in self.vars:
                self.error(f"undefined variable {gofmt.quote(t.val)}", t)
            return Variable(t.pos, [t.val])
        if t.typ == "field":
            return Field(t.pos, [t.val[1:]])
        if t.typ == "bool":
            return Const(t.pos, t.val, "true" if t.val else "false", "bool")
        if t.typ == "number":
            return Const(t.pos, self.number(t), t.val, "number")
        if t.typ == "char":
            try:
                s = _unquote(t.val[1:-1])
            except ValueError:
                s = ""
            if len(s) != 1:
                self.error(f"malformed character constant: {t.val}", t)
            return Const(t.pos, ord(s), t.val, "number")
        if t.typ == "(":
            return self.pipeline("parenthesized pipeline", ")")
        if t.typ in ("string", "rawstring"):
            return Const(t.pos, self.string_value(t), t.val, "string")
        self.backup()
        return None

    def number(self, t: Tok) -> int | float:
        s = t.val.replace("_", "")
        try:
            if s.endswith("i"):
                raise ValueError
            body = s.lstrip("+-")
            if body[:2].lower() == "0x":
                if "." in body or "p" in body.lower():
                    v = float.fromhex(s)
                    return v
                return int(s, 16)
            if any(c in body for c in ".eE"):
                return float(s)
            if len(body) > 1 and body[0] == "0" and body[1].isdigit():
                return int(s.replace(body, "0o" + body[1:]), 0)
            return int(s, 0)
        except ValueError:
            self.error(f"illegal number syntax: {gofmt.quote(t.val)}", t)
            raise AssertionError from None


def _is_empty(n: Node) -> bool:
    if isinstance(n, ListNode):
        return all(_is_empty(x) for x in n.nodes)
    return isinstance(n, Text) and not n.text.strip()


# ================================================================== functions


class _FuncError(Exception):
    """A function's own failure: ``error calling NAME: MSG``."""


@dataclass
class Func:
    """A template function: ``params`` are the kinds its fixed arguments
    convert to (``any``, ``value`` (as is), ``string``, ``int``,
    ``[]string``), ``variadic`` the kind of the rest (None: not variadic)."""
    fn: Callable[..., Any]
    params: tuple[str, ...]
    variadic: str | None = None


def _truth(v: object) -> bool:
    if v is MISSING or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


_KINDS = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"))


def _basic(v: object) -> str | None:
    for t, k in _KINDS:
        if isinstance(v, t):
            return k
    return None


def _eq(a: object, *rest: object) -> bool:
    if not rest:
        raise _FuncError("missing argument for comparison")
    for b in rest:
        ka, kb = _basic(a), _basic(b)
        if ka != kb:
            if a not in (None, MISSING) and b not in (None, MISSING):
                raise _FuncError("incompatible types for comparison")
            truth = False
        elif ka is None:
            if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
                if a not in (None, MISSING) and b not in (None, MISSING):
                    raise _FuncError(f"non-comparable type {gofmt.sprint_value(a)}: "
                                     f"{gofmt.go_type(a)}")
            truth = (a in (None, MISSING)) == (b in (None, MISSING)) and \
                (a in (None, MISSING) or a == b)
        else:
            truth = a == b
        if truth:
            return True
    return False


def _lt(a: object, b: object) -> bool:
    ka, kb = _basic(a), _basic(b)
    if ka is None or kb is None or "bool" in (ka, kb):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    if ka == "string":
        return str(a).encode() < str(b).encode()
    return a < b  # type: ignore[operator]


def _index(item: object, *indexes: object) -> object:
    if item in (None, MISSING):
        raise _FuncError("index of untyped nil")
    for ix in indexes:
        if item is None:
            raise _FuncError("index of nil pointer")
        if isinstance(item, (list, tuple, str)):
            seq = item.encode() if isinstance(item, str) else item
            if ix in (None, MISSING):
                raise _FuncError("cannot index slice/array with nil")
            if not isinstance(ix, int) or isinstance(ix, bool):
                raise _FuncError(f"cannot index slice/array with type {gofmt.go_type(ix)}")
            if not 0 <= ix < len(seq):
                raise _FuncError(f"index out of range: {ix}")
            item = seq[ix]
        elif isinstance(item, dict):
            if item and ix is not None and \
                    not any(type(k) is type(ix) for k in item):
                raise _FuncError(f"value has type {gofmt.go_type(ix)}; should be "
                                 f"{gofmt.go_type(next(iter(item)))}")
            if ix in item:
                item = item[ix]
            else:       # the zero value of the map's element type
                item = "" if item and all(isinstance(v, str) for v in item.values()) else None
        else:
            raise _FuncError(f"can't index item of type {gofmt.go_type(item)}")
    return item


def _slice(item: object, *indexes: object) -> object:
    if item in (None, MISSING):
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if not isinstance(item, (str, list, tuple)):
        raise _FuncError(f"can't slice item of type {gofmt.go_type(item)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise _FuncError("cannot 3-index slice a string")
    seq = item.encode() if isinstance(item, str) else list(item)
    cap = len(seq)
    ix = [0, len(seq)]
    for k, v in enumerate(indexes):
        if not isinstance(v, int) or isinstance(v, bool):
            raise _FuncError(f"cannot index slice/array with type {gofmt.go_type(v)}")
        if not 0 <= v <= cap:
            raise _FuncError(f"index out of range: {v}")
        if k < 2:
            ix[k] = v
    if ix[0] > ix[1]:
        raise _FuncError(f"invalid slice index: {ix[0]} > {ix[1]}")
    out = seq[ix[0]:ix[1]]
    return out.decode("utf-8", "replace") if isinstance(out, bytes) else out


def _len(item: object) -> int:
    if item in (None, MISSING):
        raise _FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (list, tuple, dict)):
        return len(item)
    raise _FuncError(f"len of type {gofmt.go_type(item)}")


def _eval_args(args: tuple) -> str:
    """html/js/urlquery's text: one string as is, else Sprint with nil as
    ``<no value>``."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return gofmt.sprint(["<no value>" if a is None else a for a in args])


def _html(*args: object) -> str:
    s = _eval_args(args)
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("'", "&#39;"),
                 ('"', "&#34;"), ("\0", "\ufffd")):
        s = s.replace(a, b)
    return s


def _js(*args: object) -> str:
    out = []
    for c in _eval_args(args):
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x20 or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _call(fn: object, *args: object) -> object:
    if not callable(fn):
        raise _FuncError(f"non-function of type {gofmt.go_type(fn)}")
    return fn(*args)


def _join(items: list, sep: str) -> str:
    return sep.join(items)


def _go_separator(c: str) -> bool:
    """strings.Title's word boundary: ASCII other than letters, digits and
    ``_``; beyond ASCII, spaces."""
    if c < "\x80":
        return not (c.isalnum() or c == "_")
    return c.isspace()


def _title(s: str) -> str:
    """strings.Title: each letter after a word boundary upper-cased."""
    out, prev = [], " "
    for c in s:
        out.append(c.upper() if _go_separator(prev) else c)
        prev = c
    return "".join(out)


def _pad(s: str, prefix: int, suffix: int) -> str:
    return s if not s else " " * prefix + s + " " * suffix


def _truncate(s: str, length: int) -> str:
    return s if len(s) < length else s[:max(length, 0)]


def _json(v: object) -> str:
    try:
        return gofmt.to_json(None if v is MISSING else v)
    except ValueError as e:
        raise _FuncError(str(e)) from None


BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: a, ("value",), "value"),      # evaluated lazily
    "or": Func(lambda *a: a, ("value",), "value"),
    "not": Func(lambda a: not _truth(a), ("value",)),
    "eq": Func(_eq, ("value",), "value"),
    "ne": Func(lambda a, b: not _eq(a, b), ("value", "value")),
    "lt": Func(_lt, ("value", "value")),
    "le": Func(lambda a, b: _lt(a, b) or _eq(a, b), ("value", "value")),
    "gt": Func(lambda a, b: not (_lt(a, b) or _eq(a, b)), ("value", "value")),
    "ge": Func(lambda a, b: not _lt(a, b), ("value", "value")),
    "index": Func(_index, ("value",), "value"),
    "slice": Func(_slice, ("value",), "value"),
    "len": Func(_len, ("value",)),
    "print": Func(lambda *a: gofmt.sprint(list(a)), (), "any"),
    "printf": Func(lambda f, *a: gofmt.sprintf(f, list(a)), ("string",), "any"),
    "println": Func(lambda *a: gofmt.sprintln(list(a)), (), "any"),
    "html": Func(_html, (), "any"),
    "js": Func(_js, (), "any"),
    "urlquery": Func(lambda *a: urllib.parse.quote_plus(_eval_args(a), safe=""), (), "any"),
    "call": Func(_call, ("value",), "any"),
}

DOCKER_FUNCS: dict[str, Func] = {
    "json": Func(_json, ("any",)),
    "split": Func(lambda s, sep: s.split(sep) if sep else list(s), ("string", "string")),
    "join": Func(_join, ("[]string", "string")),
    "title": Func(_title, ("string",)),
    "lower": Func(str.lower, ("string",)),
    "upper": Func(str.upper, ("string",)),
    "pad": Func(_pad, ("string", "int", "int")),
    "truncate": Func(_truncate, ("string", "int")),
}

# Docker's table headers keep the column name as is through these.
HEADER_FUNCS: dict[str, Func] = {
    "json": Func(lambda v: v, ("any",)),
    "split": Func(lambda v, _s: v, ("any", "string")),
    "join": Func(lambda v, _s: v, ("any", "string")),
    "title": Func(lambda v: v, ("any",)),
    "lower": Func(lambda v: v, ("any",)),
    "upper": Func(lambda v: v, ("any",)),
    "truncate": Func(lambda v, _n: v, ("any", "int")),
}

# ================================================================== execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecError(Exception):
    pass


def _labels(obj: object) -> dict[str, str] | None:
    """The labels a Docker object's ``.Label "k"`` method reads: a
    ``Labels`` dict, or ps's ``k=v,k2=v2`` string."""
    labels = obj.get("Labels") if isinstance(obj, dict) else getattr(obj, "Labels", None)
    if isinstance(labels, str):
        return dict(p.split("=", 1) if "=" in p else (p, "") for p in labels.split(",") if p)
    if isinstance(labels, dict) or labels is None:
        return labels or {}
    return None


class _State:
    def __init__(self, tmpl: Template, trees: dict[str, ListNode], funcs: dict[str, Func],
                 missing_error: bool) -> None:
        self.tmpl_name = tmpl.name
        self.text = tmpl.text
        self.trees, self.funcs, self.missing_error = trees, funcs, missing_error
        self.out: list[str] = []
        self.vars: list[list[Any]] = []
        self.node: Node | None = None
        self.depth = 0

    # -- errors and variables
    def at(self, node: Node) -> None:
        self.node = node

    def error(self, msg: str) -> None:
        name = gofmt.quote(self.tmpl_name)
        if self.node is None:
            raise _ExecError(f"template: {self.tmpl_name}: {msg}")
        pos = self.node.pos
        before = self.text[:pos]
        line = 1 + before.count("\n")
        col = pos if line == 1 else pos - before.rfind("\n") - 1
        ctx = str(self.node)
        if len(ctx) > 20:
            ctx = ctx[:20] + "..."
        raise _ExecError(f"template: {self.tmpl_name}:{line}:{col}: executing {name} "
                         f"at <{ctx}>: {msg}")

    def var(self, name: str) -> Any:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                return self.vars[k][1]
        self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                self.vars[k][1] = value
                return
        self.error(f"undefined variable: {name}")

    # -- statements
    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        if isinstance(node, Text):
            self.out.append(node.text)
        elif isinstance(node, Action):
            val = self.pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                self.out.append("<no value>" if val in (None, MISSING)
                                else gofmt.sprint_value(val))
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, Control):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                val = self.pipeline(dot, node.pipe)
                if _truth(val):
                    self.walk(val if node.kind == "with" else dot, node.body)
                elif node.else_ is not None:
                    self.walk(dot, node.else_)
                del self.vars[mark:]
        elif isinstance(node, TemplateCall):
            self.walk_template(dot, node)
        elif isinstance(node, Keyword):
            raise _Break() if node.word == "break" else _Continue()

    def walk_range(self, dot: Any, node: Control) -> None:
        mark = len(self.vars)
        val = self.pipeline(dot, node.pipe)
        inner = len(self.vars)
        pipe = node.pipe
        if isinstance(val, dict):
            items = [(k, val[k]) for k in gofmt.sorted_keys(val)]
        elif isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            if pipe.decl and len(pipe.decl) > 1:
                self.at(node)
                self.error("can't use " + gofmt.sprint_value(val) +
                           " to iterate over more than one variable")
            items = [(i, i) for i in range(val)]
        elif val in (None, MISSING):
            items = []
        else:
            self.at(node)
            self.error(f"range can't iterate over {gofmt.sprint_value(val)}")
            items = []
        try:
            for index, elem in items:
                if pipe.decl:
                    if pipe.is_assign:
                        self.set_var(pipe.decl[0], index if len(pipe.decl) > 1 else elem)
                        if len(pipe.decl) > 1:
                            self.set_var(pipe.decl[1], elem)
                    else:
                        self.vars[-1][1] = elem
                        if len(pipe.decl) > 1:
                            self.vars[-2][1] = index
                try:
                    self.walk(elem, node.body)
                except _Continue:
                    pass
                finally:
                    del self.vars[inner:]
        except _Break:
            pass
        if not items and node.else_ is not None:
            self.walk(dot, node.else_)
        del self.vars[mark:]

    def walk_template(self, dot: Any, node: TemplateCall) -> None:
        self.at(node)
        tree = self.trees.get(node.name)
        if tree is None:
            self.error(f"template {gofmt.quote(node.name)} not defined")
        if self.depth >= MAX_DEPTH:
            self.error(f"exceeded maximum template depth ({MAX_DEPTH})")
        new_dot = self.pipeline(dot, node.pipe) if node.pipe else MISSING
        saved_vars, saved_name = self.vars, self.tmpl_name
        self.vars, self.tmpl_name = [["$", new_dot]], node.name
        self.depth += 1
        try:
            self.walk(new_dot, tree)
        finally:
            self.depth -= 1
            self.vars, self.tmpl_name = saved_vars, saved_name

    # -- expressions
    def pipeline(self, dot: Any, pipe: Pipe) -> Any:
        self.at(pipe)
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:           # a nil interface{} is no value
                value = MISSING
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.error(f"can't give argument to non-function {args[0]}")

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Field):
            self.at(first)
            return self.field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, Chain):
            self.at(first)
            if isinstance(first.node, Const) and first.node.kind == "nil":
                self.error(f"indirection through explicit nil in {first}")
            recv = self.arg(dot, first.node)
            return self.field_chain(dot, recv, first, first.fields, cmd.args, final)
        if isinstance(first, Ident):
            return self.function(dot, first, cmd, cmd.args, final)
        if isinstance(first, Pipe):
            self.not_a_function(cmd.args, final)
            return self.pipeline(dot, first)
        if isinstance(first, Variable):
            self.at(first)
            value = self.var(first.idents[0])
            if len(first.idents) == 1:
                self.not_a_function(cmd.args, final)
                return value
            return self.field_chain(dot, value, first, first.idents[1:], cmd.args, final)
        assert isinstance(first, Const)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if first.kind == "dot":
            return dot
        if first.kind == "nil":
            self.error("nil is not a command")
        return first.value

    def arg(self, dot: Any, node: Node) -> Any:
        """An argument's value (MISSING where Go has an invalid value)."""
        self.at(node)
        if isinstance(node, Const):
            return dot if node.kind == "dot" else node.value
        if isinstance(node, Field):
            return self.field_chain(dot, dot, node, node.idents, [node], _NO_FINAL)
        if isinstance(node, Variable):
            value = self.var(node.idents[0])
            if len(node.idents) == 1:
                return value
            return self.field_chain(dot, value, node, node.idents[1:], [node], _NO_FINAL)
        if isinstance(node, Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, Ident):
            return self.function(dot, node, node, [node], _NO_FINAL)
        if isinstance(node, Chain):
            return self.command(dot, Command(node.pos, [node]), _NO_FINAL)
        self.error(f"can't handle {node} for arg")

    def field_chain(self, dot: Any, recv: Any, node: Node, idents: list[str],
                    args: list[Node], final: Any) -> Any:
        for name in idents[:-1]:
            recv = self.field(dot, name, node, [], _NO_FINAL, recv)
        return self.field(dot, idents[-1], node, args, final, recv)

    def field(self, dot: Any, name: str, node: Node, args: list[Node], final: Any,
              recv: Any) -> Any:
        if recv is MISSING:
            if self.missing_error:
                self.error(f"nil data; no entry for key {gofmt.quote(name)}")
            return MISSING
        has_args = len(args) > 1 or final is not _NO_FINAL
        if isinstance(recv, _Headers):      # a table's header: every field is a name
            return recv[name]
        if recv is None:
            self.error(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(recv, Context) and name not in recv and \
                not (name == "Label" and has_args):
            self.error(f"can't evaluate field {name} in type {recv.go_type}")
        if isinstance(recv, dict):
            if name in recv:
                if has_args:
                    self.error(f"{name} is not a method but has arguments")
                return recv[name]
            if name == "Label" and has_args and (labels := _labels(recv)) is not None:
                return self.call_method(dot, name, lambda k: labels.get(k, ""),
                                        args, final)
            if self.missing_error:
                self.error(f"map has no entry for key {gofmt.quote(name)}")
            return MISSING
        if not isinstance(recv, (str, int, float, bool, list, tuple, bytes)) \
                and name[:1].isupper():
            if name == "Label" and not hasattr(recv, "Label") and \
                    (labels := _labels(recv)) is not None and has_args:
                return self.call_method(dot, name, lambda k: labels.get(k, ""), args, final)
            if hasattr(recv, name):
                attr = getattr(recv, name)
                if callable(attr):
                    return self.call_method(dot, name, attr, args, final)
                if has_args:
                    self.error(f"{name} has arguments but cannot be invoked as function")
                return attr
        self.error(f"can't evaluate field {name} in type {gofmt.go_type(recv)}")

    def call_method(self, dot: Any, name: str, fn: Callable[..., Any], args: list[Node],
                    final: Any) -> Any:
        vals = [self.arg(dot, a) for a in args[1:]]
        if final is not _NO_FINAL:
            vals.append(final)
        vals = [None if v is MISSING else v for v in vals]
        try:
            inspect.signature(fn).bind(*vals)
        except TypeError:
            self.error(f"wrong number of args for {name}")
        except ValueError:
            pass
        try:
            return fn(*vals)
        except Exception as e:          # a method's failure is the template's
            self.error(f"error calling {name}: {e}")

    def function(self, dot: Any, ident: Ident, cmd: Node, args: list[Node],
                 final: Any) -> Any:
        self.at(ident)
        name = ident.name
        f = self.funcs.get(name)
        if f is None:
            self.error(f"{gofmt.quote(name)} is not a defined function")
        argn = args[1:]
        num_in = len(argn) + (final is not _NO_FINAL)
        nfixed = len(f.params)
        if f.variadic is not None:
            if num_in < nfixed:
                self.error(f"wrong number of args for {name}: want at least {nfixed} "
                           f"got {len(argn)}")
        elif num_in != nfixed:
            self.error(f"wrong number of args for {name}: want {nfixed} got {num_in}")
        if name in ("and", "or") and f is BUILTINS[name]:
            v: Any = MISSING
            for a in argn:
                v = self.arg(dot, a)
                if _truth(v) == (name == "or"):
                    return v
            return final if final is not _NO_FINAL else v
        vals = []
        for k, a in enumerate(argn):
            kind = f.params[k] if k < nfixed else f.variadic
            vals.append(self.convert(self.arg(dot, a), kind or "any"))
        if final is not _NO_FINAL:
            k = len(argn)
            vals.append(self.convert(final, (f.params[k] if k < nfixed else f.variadic)
                                     or "any"))
        self.at(cmd)
        try:
            return f.fn(*vals)
        except _FuncError as e:
            self.error(f"error calling {name}: {e}")
        except (TypeError, ValueError, AttributeError, OverflowError) as e:
            self.error(f"error calling {name}: {e}")

    def convert(self, v: Any, kind: str) -> Any:
        """An argument as Go converts it to the function's parameter type."""
        if kind == "value":
            return v
        if v is MISSING or v is None:
            if kind == "any":
                return None
            self.error(f"invalid value; expected {kind}")
        ok = {"any": True,
              "string": isinstance(v, str),
              "int": isinstance(v, int) and not isinstance(v, bool),
              "[]string": isinstance(v, (list, tuple)) and
              all(isinstance(x, str) for x in v)}[kind]
        if not ok:
            self.error(f"wrong type for value; expected {kind}; got {gofmt.go_type(v)}")
        return v


# ================================================================== API


@dataclass
class Template:
    """A parsed template: its text, name and the named templates its
    ``define``/``block`` actions made (the root is ``trees[name]``)."""
    text: str
    name: str
    trees: dict[str, ListNode]
    funcs: dict[str, Func]

    def execute(self, obj: object, *, missing_key_error: bool = False,
                funcs: dict[str, Func] | None = None) -> str:
        """The template run with ``obj`` as dot. ``missing_key_error`` is Go's
        ``missingkey=error`` (what ``docker inspect`` uses on raw JSON): a
        missing map key is an error instead of ``<no value>``."""
        state = _State(self, self.trees, {**self.funcs, **(funcs or {})}, missing_key_error)
        dot = MISSING if obj is None else obj
        state.vars = [["$", dot]]
        try:
            state.walk(dot, self.trees[self.name])
        except _ExecError as e:
            raise TemplateError(str(e)) from None
        except (_Break, _Continue):
            pass
        except RecursionError:      # templates calling templates, or deep data
            raise TemplateError(f"template: {self.name}: nested too deeply "
                                f"to run or print") from None
        return "".join(state.out)


def parse(template: str, name: str = "",
          funcs: dict[str, Func] | None = None) -> Template:
    """``template`` parsed as Go's ``template.New(name).Funcs(Docker's).Parse``
    does; a ``TemplateError`` names what is wrong and on which line."""
    all_funcs = {**BUILTINS, **DOCKER_FUNCS, **(funcs or {})}
    trees: dict[str, ListNode] = {}
    try:
        p = _Parser(template, name, set(all_funcs), trees)
        root = p.parse()
    except RecursionError:
        raise TemplateError(f"template: {name}:1: max expression depth exceeded") from None
    if name not in trees or not _is_empty(root):
        trees[name] = root
    return Template(template, name, trees, all_funcs)


def render(template: str, obj: object) -> str:
    """``template`` run on ``obj`` (``\\t``/``\\n`` in the template's own
    text are a tab and a newline, never in values)."""
    return parse(template).execute(obj)


TABLE_PREFIX = "table"


def is_table(fmt: str) -> bool:
    """Docker's test for the ``table`` directive (a prefix, as Docker's)."""
    return fmt.startswith(TABLE_PREFIX)


def header_name(field_name: str) -> str:
    """A column's default header: the field's words upper-cased, as Docker
    names its own (``CreatedAt`` -> ``CREATED AT``, ``ID`` -> ``ID``)."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\W|$)|[A-Z]?[a-z]+|\d+|[^\W\d_]+",
                       field_name)
    return " ".join(words).upper() or field_name.upper()


class _Headers(dict):
    """The row Docker runs a table's template on for its header: every
    field is its column's name (``headers`` first, else ``header_name``)."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__()
        self.names = headers

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> str:
        return self.names.get(key) or header_name(key)

    def get(self, key: str, default: Any = None) -> Any:   # noqa: ARG002
        return self[key]


def render_table(template: str, rows: list, headers: dict[str, str] | None = None) -> str:
    """Docker's ``--format 'table ...'``: a header line (the template run on
    the column names, with Docker's header functions) then one line per row,
    aligned by Go's tabwriter as Docker's (minwidth 10, padding 3). The
    ``table`` prefix is optional here; no trailing newline."""
    body = template[len(TABLE_PREFIX):] if is_table(template) else template
    tmpl = parse(body.strip(" "))
    head = tmpl.execute(_Headers(headers or {}), funcs=HEADER_FUNCS)
    text = head + "\n" + "".join(tmpl.execute(r) + "\n" for r in rows)
    return gofmt.tabwrite(text).removesuffix("\n")

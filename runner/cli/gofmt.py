"""Values printed as Go prints them, for ``--format`` output that scripts
written against Docker parse: ``fmt``'s ``%v`` (``map[a:1]``, ``[a b]``,
``<nil>``, floats as ``1e+06``), ``Sprintf`` verbs with flags and widths,
``strconv.Quote``, ``encoding/json`` as Docker's ``json`` function writes
it, and ``text/tabwriter`` with the settings Docker's tables use. Pure
functions, no I/O (``runner.cli.gotemplate`` is the template engine)."""
from __future__ import annotations

import math
import re
from decimal import Decimal

# ------------------------------------------------------------------ types


def go_type(v: object) -> str:
    """The Go type name a value decoded from JSON would have (for ``%!d(int=5)``
    and error messages)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    if isinstance(v, dict):
        if v and all(isinstance(x, str) for x in v.values()):
            return "map[string]string"
        return "map[string]interface {}"
    return type(v).__name__


def _key_order(k: object) -> tuple:
    """fmt prints map keys sorted: numbers by value, strings by bytes."""
    if isinstance(k, bool):
        return (0, int(k), "")
    if isinstance(k, (int, float)):
        return (1, k, "")
    return (2, 0, str(k).encode())


def sorted_keys(d: dict) -> list:
    """``d``'s keys in the order Go's fmt and text/template's range use."""
    return sorted(d, key=_key_order)


# ------------------------------------------------------------------ floats


def _digits(f: float) -> tuple[str, int]:
    """The shortest decimal digits that round-trip ``abs(f)`` and the decimal
    point position (``0.00123`` -> ("123", -2)), as strconv's shortest mode."""
    _, digits, exp = Decimal(repr(abs(f))).as_tuple()
    ds = "".join(map(str, digits))
    dp = len(ds) + int(exp)
    stripped = ds.lstrip("0")
    dp -= len(ds) - len(stripped)
    ds = stripped.rstrip("0")
    return (ds, dp) if ds else ("0", 1)


def _exp(e: int) -> str:
    return ("e-" if e < 0 else "e+") + f"{abs(e):02d}"


def format_float(f: float, verb: str = "v", prec: int = -1) -> str:
    """``f`` as Go's fmt prints it for ``verb`` (``v``/``g`` shortest, ``e``,
    ``f`` with ``prec``); ``+Inf``, ``-Inf``, ``NaN`` as Go spells them."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    upper = verb in "EG"
    verb = verb.lower()
    if verb in ("f", "e"):
        out = f"{f:.{6 if prec < 0 else prec}{verb}}"
    elif prec >= 0:
        out = f"{f:.{max(prec, 1)}g}"
        if "e" in out:
            mant, e = out.split("e")
            out = mant + _exp(int(e))
    else:
        ds, dp = _digits(f)
        neg = "-" if math.copysign(1.0, f) < 0 else ""
        exp = dp - 1
        if exp < -4 or exp >= 6:      # strconv's shortest %g switches at 6
            mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
            out = neg + mant + _exp(exp)
        elif dp <= 0:
            out = neg + "0." + "0" * -dp + ds
        elif dp >= len(ds):
            out = neg + ds + "0" * (dp - len(ds))
        else:
            out = neg + ds[:dp] + "." + ds[dp:]
    return out.upper() if upper else out


# ------------------------------------------------------------------ %v


def sprint_value(v: object) -> str:
    """``v`` as ``fmt.Sprint`` prints it (``%v``)."""
    return _fmt_v(v, "v")


def _fmt_v(v: object, verb: str) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_v(x, verb) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_fmt_v(k, verb)}:{_fmt_v(v[k], verb)}"
                                 for k in sorted_keys(v)) + "]"
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    return str(v)


def sprint(args: list) -> str:
    """``fmt.Sprint``: spaces between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(sprint_value(a))
    return "".join(out)


def sprintln(args: list) -> str:
    """``fmt.Sprintln``: spaces always, a newline at the end."""
    return " ".join(sprint_value(a) for a in args) + "\n"


# ------------------------------------------------------------------ quoting


_QUOTE_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r",
              "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}


def _quote_char(ch: str) -> str:
    o = ord(ch)
    if ch in _QUOTE_ESC:
        return _QUOTE_ESC[ch]
    if o < 0x20 or o == 0x7f:
        return f"\\x{o:02x}"
    if ch.isprintable():
        return ch
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def quote(s: str) -> str:
    """``strconv.Quote``: Go's double-quoted string literal for ``s``."""
    return '"' + "".join(map(_quote_char, s)) + '"'


# ------------------------------------------------------------------ Sprintf

_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.|$)", re.S)


def _pad(s: str, width: int | None, minus: bool, zero: bool) -> str:
    if width is None or len(s) >= width:
        return s
    if minus:
        return s + " " * (width - len(s))
    if zero:
        sign = s[0] if s[:1] in "+-" else ""
        return sign + "0" * (width - len(s)) + s[len(sign):]
    return " " * (width - len(s)) + s


def _bad(verb: str, v: object) -> str:
    return f"%!{verb}(<nil>)" if v is None else f"%!{verb}({go_type(v)}={sprint_value(v)})"


def _fmt_int(v: int, verb: str, flags: str, prec: int | None) -> str | None:
    if verb == "c":
        return chr(v) if 0 <= v < 0x110000 else "\ufffd"
    if verb == "q":
        return "'" + quote(chr(v))[1:-1].replace("\\\"", "\"").replace("'", "\\'") + "'"
    if verb == "U":
        return f"U+{v:04X}"
    base = {"d": "d", "v": "d", "x": "x", "X": "X", "o": "o", "O": "o", "b": "b"}.get(verb)
    if base is None:
        return None
    digits = format(abs(v), base)
    if prec is not None:
        digits = digits.rjust(prec, "0") if prec else ("" if v == 0 else digits)
    prefix = ""
    if "#" in flags:
        prefix = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}.get(verb, "")
    if verb == "O":
        prefix = "0o"
    sign = "-" if v < 0 else ("+" if "+" in flags else (" " if " " in flags else ""))
    return sign + prefix + digits


def _fmt_one(v: object, verb: str, flags: str, width: int | None,
             prec: int | None) -> str:
    minus, zero = "-" in flags, "0" in flags and "-" not in flags
    if verb == "T":
        return _pad(go_type(v), width, minus, False)
    if v is None:
        return _pad("<nil>" if verb == "v" else _bad(verb, v), width, minus, False)
    if isinstance(v, bool):
        if verb in "vt":
            return _pad("true" if v else "false", width, minus, False)
        return _bad(verb, v)
    if isinstance(v, int):
        s = _fmt_int(v, verb, flags, prec)
        if s is None:
            return _bad(verb, v)
        return _pad(s, width, minus, zero and prec is None and verb not in "cqU")
    if isinstance(v, float):
        if verb not in "vbeEfFgGxX":
            return _bad(verb, v)
        s = format_float(v, "g" if verb == "v" else ("f" if verb == "F" else verb),
                         -1 if prec is None else prec)
        if "+" in flags and not s.startswith(("-", "+")):
            s = "+" + s
        elif " " in flags and not s.startswith(("-", "+")):
            s = " " + s
        return _pad(s, width, minus, zero and not math.isinf(v) and not math.isnan(v))
    if isinstance(v, str):
        if prec is not None and verb in "sqv":
            v = v[:prec]
        if verb in "sv":
            return _pad(v, width, minus, zero)
        if verb == "q":
            return _pad(quote(v) if "#" not in flags or "`" in v else "`" + v + "`",
                        width, minus, False)
        if verb in "xX":
            h = v.encode().hex()
            return _pad(h.upper() if verb == "X" else h, width, minus, False)
        return _bad(verb, v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_one(x, verb, flags, width, prec) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(
            f"{_fmt_one(k, verb, flags, width, prec)}:{_fmt_one(v[k], verb, flags, width, prec)}"
            for k in sorted_keys(v)) + "]"
    return _pad(str(v), width, minus, False) if verb in "sv" else _bad(verb, v)


def sprintf(fmt: str, args: list) -> str:
    """``fmt.Sprintf``: verbs ``%v %s %d %q %x %X %o %b %c %U %t %e %f %g %T``
    with flags, widths and precisions (``*`` too); Go's ``%!d(string=x)``,
    ``%!s(MISSING)`` and ``%!(EXTRA ...)`` for mismatches."""
    out, pos, argi = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.groups()
        if verb == "%" and not flags and width_s is None and prec_s is None:
            out.append("%")
            continue
        width = prec = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                if width < 0:
                    flags, width = flags + "-", -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = max(args[argi], 0)
            else:
                out.append("%!(BADPREC)")
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s or "0")
        if verb == "":
            out.append("%!(NOVERB)")
            continue
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(args[argi], verb, flags, width, prec))
        argi += 1
    out.append(fmt[pos:])
    if argi < len(args):
        out.append("%!(EXTRA " + ", ".join(
            "<nil>" if a is None else f"{go_type(a)}={sprint_value(a)}"
            for a in args[argi:]) + ")")
    return "".join(out)


# ------------------------------------------------------------------ json

_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_str(s: str) -> str:
    return '"' + "".join(_JSON_ESC.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c)
                         for c in s) + '"'


def to_json(v: object) -> str:
    """``v`` as Docker's ``json`` template function writes it: Go's
    ``encoding/json`` with HTML escaping off, compact, keys in the order the
    object has them (Docker's objects are structs), floats as Go writes
    them (``1000000``, ``1e+21``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"json: unsupported value: {format_float(v)}")
        a = abs(v)
        if a != 0 and (a < 1e-6 or a >= 1e21):
            s = _json_exp(v)
        else:
            s = format(Decimal(repr(v)), "f")
            if "." in s:
                s = s.rstrip("0").rstrip(".")
        return s
    if isinstance(v, str):
        return _json_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{_json_str(str(k))}:{to_json(x)}" for k, x in v.items()) + "}"
    return _json_str(str(v))


def _json_exp(v: float) -> str:
    ds, dp = _digits(v)
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    e = dp - 1      # Go's encoder writes e-7, not e-07, and e+21
    return ("-" if v < 0 else "") + mant + (f"e-{-e}" if e < 0 else f"e+{e:02d}")


# ------------------------------------------------------------------ tabwriter


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """``text`` aligned as Go's ``text/tabwriter`` with a space pad char and
    no flags (Docker's tables: ``NewWriter(out, 10, 1, 3, ' ', 0)``): cells
    end at tabs, a column is a run of consecutive lines that have that cell,
    its width the widest cell plus ``padding`` (at least ``minwidth``); the
    text after a line's last tab is not part of a column."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(l0: int, l1: int) -> None:
        for cells in lines[l0:l1]:
            parts = []
            for j, c in enumerate(cells):
                parts.append(c)
                if j < len(widths):
                    parts.append(" " * (widths[j] - len(c)))
            out.append("".join(parts))

    def fmt(l0: int, l1: int) -> None:
        column = len(widths)
        this = l0
        while this < l1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(l0, this)
            l0 = this
            width = minwidth
            while this < l1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(l0, this)
            widths.pop()
            l0 = this
        write_lines(l0, l1)

    fmt(0, len(lines))
    return "\n".join(out)

"""The part of Go's text/template that ``--format`` flags use: ``{{.A.B}}``
and ``{{json .A}}``, values printed as Go prints them (``true``, ``[a b]``,
``<no value>``), maps as JSON, ``\\t`` and ``\\n`` escapes."""
from __future__ import annotations

import json
import re

_FIELD = re.compile(r"\{\{\s*(json\s+)?(\.[\w.]*)\s*\}\}")


def _field(obj: object, path: str) -> object:
    for part in [p for p in path.split(".") if p]:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + " ".join(_text(v) for v in value) + "]"
    return "<no value>" if value is None else str(value)


def render(template: str, obj: object) -> str:
    """``template`` with each ``{{...}}`` replaced by the value it names
    (escapes apply to the template's own text, never to values)."""
    out, pos = [], 0
    for m in _FIELD.finditer(template):
        out.append(_unescape(template[pos:m.start()]))
        value = _field(obj, m[2])
        out.append(json.dumps(value) if m[1] else _text(value))
        pos = m.end()
    out.append(_unescape(template[pos:]))
    return "".join(out)


def _unescape(text: str) -> str:
    return text.replace("\\t", "\t").replace("\\n", "\n")

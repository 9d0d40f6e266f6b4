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
    """``template`` with each ``{{...}}`` replaced by the value it names."""
    def sub(m: re.Match) -> str:
        value = _field(obj, m[2])
        return json.dumps(value) if m[1] else _text(value)
    return _FIELD.sub(sub, template).replace("\\t", "\t").replace("\\n", "\n")

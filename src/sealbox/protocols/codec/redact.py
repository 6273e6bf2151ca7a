"""Request parameters as an audit record may hold them.

Shape-driven: every blob member (plaintexts, ciphertexts, key material, data keys) and
every member botocore marks sensitive is left out, at any depth. Names become
lowerCamelCase, as CloudTrail writes them. The walk is planned once per shape and
reused, since it runs on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

_DROP = object()
Cleaner = Callable[[Any], Any]
# Keyed by the shape object itself (kept alive here), never by id(), which can be reused.
_plans: dict[Any, Cleaner] = {}


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _plan(shape: Any) -> Cleaner:
    cached = _plans.get(shape)
    if cached is not None:
        return cached
    plan: Cleaner
    if shape.type_name == "blob" or shape.metadata.get("sensitive"):

        def plan(value: Any) -> Any:
            return _DROP

    elif shape.type_name == "structure":
        members = [(name, _camel(name), member) for name, member in shape.members.items()]
        _plans[shape] = lambda value: struct(value)  # recursive shapes

        def struct(value: Any) -> Any:
            if not isinstance(value, dict):
                return _DROP
            out = {}
            for name, camel, member in members:
                if name in value:
                    cleaned = _plan(member)(value[name])
                    if cleaned is not _DROP:
                        out[camel] = cleaned
            return out

        plan = struct
    elif shape.type_name == "list":
        member = shape.member

        def plan(value: Any) -> Any:
            clean = _plan(member)
            return [c for c in (clean(v) for v in value) if c is not _DROP]

    elif shape.type_name == "map":
        value_shape = shape.value

        def plan(value: Any) -> Any:
            clean = _plan(value_shape)
            return {k: c for k, c in ((k, clean(v)) for k, v in value.items()) if c is not _DROP}

    else:
        plan = _scalar
    _plans[shape] = plan
    return plan


def audit_parameters(operation: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """params with secrets removed, or None for an operation without input."""
    shape = operation.input_shape
    if shape is None or not params:
        return None
    cleaned = _plan(shape)(params)
    return cleaned if isinstance(cleaned, dict) else None

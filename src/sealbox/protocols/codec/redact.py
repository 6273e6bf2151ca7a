"""Request parameters as an audit record may hold them.

Shape-driven: every blob member (plaintexts, ciphertexts, key material, data keys) and
every member botocore marks sensitive is left out, at any depth. Names become
lowerCamelCase, as CloudTrail writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _clean(shape: Any, value: Any) -> Any:
    if shape.type_name == "blob" or shape.metadata.get("sensitive"):
        return None
    if shape.type_name == "structure" and isinstance(value, dict):
        out = {}
        for name, member in shape.members.items():
            if name in value:
                cleaned = _clean(member, value[name])
                if cleaned is not None:
                    out[_camel(name)] = cleaned
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [_clean(shape.member, v) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _clean(shape.value, v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def audit_parameters(operation: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    """params with secrets removed, or None for an operation without input."""
    shape = operation.input_shape
    if shape is None or not params:
        return None
    cleaned = _clean(shape, params)
    return cleaned if isinstance(cleaned, dict) else None

"""Event selectors: which audit events a trail delivers.

Basic selectors (EventSelectors) select management events (IncludeManagementEvents,
ReadWriteType, ExcludeManagementEventSources) and data events by DataResources; the only
data resource type Sealbox records is ``AWS::S3::Object`` (values ``arn:aws:s3`` for every
bucket, or ``arn:aws:s3:::bucket/prefix``). Advanced selectors (AdvancedEventSelectors)
match fields of the record with Equals / StartsWith / EndsWith and their negations: within
a selector every field selector must match, and an event is delivered when any selector
matches it. A trail that never had selectors put delivers every management event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from sealbox.audit.trail_errors import (
    InvalidEventSelectorsError,
    InvalidParameterCombinationError,
)

Selector = dict[str, Any]
Record = Mapping[str, Any]

MAX_SELECTORS: Final = 5
MAX_DATA_VALUES: Final = 250
READ_WRITE_TYPES: Final = ("ReadOnly", "WriteOnly", "All")
S3_OBJECT: Final = "AWS::S3::Object"
# Types AWS accepts; Sealbox records no events of the others, so they never match.
DATA_RESOURCE_TYPES: Final = frozenset({S3_OBJECT, "AWS::Lambda::Function", "AWS::DynamoDB::Table"})
_S3_ALL: Final = frozenset({"arn:aws:s3", "arn:aws:s3:::"})
_S3_PREFIX: Final = "arn:aws:s3:::"
ADVANCED_FIELDS: Final = frozenset(
    {
        "eventCategory", "eventSource", "eventName", "eventType", "readOnly", "errorCode",
        "resources.type", "resources.ARN", "userIdentity.arn",
    }
)  # fmt: skip
_OPERATORS: Final = (
    "Equals",
    "StartsWith",
    "EndsWith",
    "NotEquals",
    "NotStartsWith",
    "NotEndsWith",
)

DEFAULT_SELECTORS: Final[tuple[Selector, ...]] = (
    {
        "ReadWriteType": "All",
        "IncludeManagementEvents": True,
        "DataResources": [],
        "ExcludeManagementEventSources": [],
    },
)


# -- validation ---------------------------------------------------------------------------


def normalize(
    selectors: Sequence[Mapping[str, Any]] | None,
    advanced: Sequence[Mapping[str, Any]] | None,
) -> tuple[list[Selector] | None, list[Selector] | None]:
    """PutEventSelectors' input checked and with AWS's defaults filled in."""
    if (selectors is None) == (advanced is None):
        raise InvalidParameterCombinationError(
            "Specify either EventSelectors or AdvancedEventSelectors, but not both."
        )
    if selectors is not None:
        return [_basic(s) for s in _bounded(selectors)], None
    assert advanced is not None
    return None, [_advanced(s) for s in _bounded(advanced)]


def _bounded(items: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    if len(items) > MAX_SELECTORS:
        raise InvalidEventSelectorsError(f"A trail can have at most {MAX_SELECTORS} selectors.")
    return items


def _basic(selector: Mapping[str, Any]) -> Selector:
    read_write = selector.get("ReadWriteType") or "All"
    if read_write not in READ_WRITE_TYPES:
        raise InvalidEventSelectorsError(f"ReadWriteType {read_write!r} is not valid.")
    resources: list[dict[str, Any]] = []
    count = 0
    for resource in selector.get("DataResources") or ():
        kind = resource.get("Type")
        values = list(resource.get("Values") or ())
        if kind not in DATA_RESOURCE_TYPES:
            raise InvalidEventSelectorsError(f"Data resource type {kind!r} is not valid.")
        if kind == S3_OBJECT:
            for value in values:
                if not _valid_s3_value(value):
                    raise InvalidEventSelectorsError(f"Value {value} for DataResources is invalid.")
        count += len(values)
        resources.append({"Type": kind, "Values": values})
    if count > MAX_DATA_VALUES:
        raise InvalidEventSelectorsError(
            f"A selector can name at most {MAX_DATA_VALUES} data resource values."
        )
    return {
        "ReadWriteType": read_write,
        "IncludeManagementEvents": selector.get("IncludeManagementEvents", True) is not False,
        "DataResources": resources,
        "ExcludeManagementEventSources": list(selector.get("ExcludeManagementEventSources") or ()),
    }


def _valid_s3_value(value: str) -> bool:
    if value in _S3_ALL:
        return True
    if not value.startswith(_S3_PREFIX):
        return False
    bucket = value[len(_S3_PREFIX) :].split("/", 1)[0]
    return 3 <= len(bucket) <= 63


def _advanced(selector: Mapping[str, Any]) -> Selector:
    fields: list[dict[str, Any]] = []
    categories: list[str] = []
    for field_selector in selector.get("FieldSelectors") or ():
        name = field_selector.get("Field")
        if name not in ADVANCED_FIELDS:
            raise InvalidEventSelectorsError(f"Field {name!r} is not valid in a field selector.")
        out: dict[str, Any] = {"Field": name}
        for operator in _OPERATORS:
            values = field_selector.get(operator)
            if values is not None:
                if not values:
                    raise InvalidEventSelectorsError(f"{operator} of {name} must not be empty.")
                out[operator] = list(values)
        if len(out) == 1:
            raise InvalidEventSelectorsError(f"The field selector for {name} has no operator.")
        if name == "eventCategory":
            categories += out.get("Equals", [])
        fields.append(out)
    if not fields:
        raise InvalidEventSelectorsError("An advanced event selector needs field selectors.")
    if not categories or any(c not in ("Management", "Data") for c in categories):
        raise InvalidEventSelectorsError(
            "An advanced event selector needs eventCategory Equals Management or Data."
        )
    out_selector: Selector = {"FieldSelectors": fields}
    if selector.get("Name") is not None:
        out_selector["Name"] = selector["Name"]
    return out_selector


# -- matching ---------------------------------------------------------------------------------


def selects(
    selectors: Sequence[Mapping[str, Any]] | None,
    advanced: Sequence[Mapping[str, Any]] | None,
    record: Record,
) -> bool:
    """Whether a trail with these selectors delivers this event record."""
    if advanced is not None:
        return any(_advanced_match(s, record) for s in advanced)
    return any(_basic_match(s, record) for s in (selectors or DEFAULT_SELECTORS))


def _basic_match(selector: Mapping[str, Any], record: Record) -> bool:
    read_only = bool(record.get("readOnly"))
    read_write = selector.get("ReadWriteType", "All")
    if (read_write == "ReadOnly" and not read_only) or (read_write == "WriteOnly" and read_only):
        return False
    if record.get("managementEvent", True):
        return bool(selector.get("IncludeManagementEvents", True)) and record.get(
            "eventSource"
        ) not in (selector.get("ExcludeManagementEventSources") or ())
    arns = _resource_arns(record, S3_OBJECT)
    for resource in selector.get("DataResources") or ():
        if resource.get("Type") != S3_OBJECT:
            continue
        for value in resource.get("Values") or ():
            if value in _S3_ALL and arns:
                return True
            wanted = value if "/" in value[len(_S3_PREFIX) :] else value + "/"
            if any(a.startswith(wanted) for a in arns):
                return True
    return False


def _resource_arns(record: Record, kind: str | None) -> list[str]:
    out: list[str] = []
    for resource in record.get("resources") or ():
        if isinstance(resource, Mapping) and (kind is None or resource.get("type") == kind):
            out.append(str(resource.get("ARN", "")))
    return out


def _advanced_match(selector: Mapping[str, Any], record: Record) -> bool:
    types: list[str] | None = None
    for field_selector in selector.get("FieldSelectors") or ():
        if field_selector.get("Field") == "resources.type":
            types = field_selector.get("Equals")
    return all(
        _field_match(f, _field_values(f["Field"], record, types))
        for f in selector.get("FieldSelectors") or ()
    )


def _field_values(name: str, record: Record, types: Sequence[str] | None) -> list[str]:
    if name == "readOnly":
        return ["true" if record.get("readOnly") else "false"]
    if name == "resources.type":
        return [
            str(r.get("type", "")) for r in record.get("resources") or () if isinstance(r, Mapping)
        ]
    if name == "resources.ARN":
        if not types:
            return _resource_arns(record, None)
        return [a for t in types for a in _resource_arns(record, t)]
    if name == "userIdentity.arn":
        identity = record.get("userIdentity") or {}
        value = identity.get("arn") if isinstance(identity, Mapping) else None
    else:
        value = record.get(name)
    return [] if value is None else [str(value)]


_POSITIVE: Final[dict[str, Callable[[str, str], bool]]] = {
    "Equals": lambda v, w: v == w,
    "StartsWith": lambda v, w: v.startswith(w),
    "EndsWith": lambda v, w: v.endswith(w),
}
_NEGATIVE: Final[dict[str, str]] = {
    "NotEquals": "Equals",
    "NotStartsWith": "StartsWith",
    "NotEndsWith": "EndsWith",
}


def _field_match(field_selector: Mapping[str, Any], values: Sequence[str]) -> bool:
    for operator, test in _POSITIVE.items():
        wanted = field_selector.get(operator)
        if wanted is not None and not any(test(v, w) for v in values for w in wanted):
            return False
    for operator, positive in _NEGATIVE.items():
        unwanted = field_selector.get(operator)
        test = _POSITIVE[positive]
        if unwanted is not None and any(test(v, w) for v in values for w in unwanted):
            return False
    return True

"""GET/HEAD/COPY preconditions and byte ranges, with S3's rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sealbox.s3.errors import InvalidRange, NotModified, PreconditionFailed
from sealbox.s3.model import ObjectVersion

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _etag_matches(header: str, etag: str) -> bool:
    wanted = [v.strip() for v in header.split(",")]
    bare = etag.strip('"')
    return any(v == "*" or v.strip('"') == bare for v in wanted)


def _seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


def check(obj: ObjectVersion, params: Mapping[str, Any], prefix: str = "") -> None:
    """If-Match / If-None-Match / If-(Un)Modified-Since (prefix "CopySource" for COPY).

    S3: If-Match true overrides a false If-Unmodified-Since; If-None-Match false
    overrides a true If-Modified-Since. A failed condition on a copy source is always
    412, never 304.
    """
    if_match = params.get(f"{prefix}IfMatch")
    if_none_match = params.get(f"{prefix}IfNoneMatch")
    modified_since = params.get(f"{prefix}IfModifiedSince")
    unmodified_since = params.get(f"{prefix}IfUnmodifiedSince")
    modified = _seconds(obj.last_modified)
    if if_match is not None:
        if not _etag_matches(if_match, obj.etag):
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Match",
            )
    elif unmodified_since is not None and modified > unmodified_since:
        raise PreconditionFailed(
            "At least one of the pre-conditions you specified did not hold",
            Condition="If-Unmodified-Since",
        )
    not_modified_error = PreconditionFailed if prefix else NotModified
    if if_none_match is not None:
        if _etag_matches(if_none_match, obj.etag):
            raise not_modified_error(
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-None-Match",
            )
    elif modified_since is not None and modified <= modified_since:
        raise not_modified_error(
            "At least one of the pre-conditions you specified did not hold",
            Condition="If-Modified-Since",
        )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a Range header, or None for the whole object.

    Syntax S3 does not understand (or several ranges) is ignored, as S3 does; a range
    that starts at or past the end is InvalidRange (416).
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if size == 0:
        raise _unsatisfiable(size)
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: S3 ignores it
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> InvalidRange:
    return InvalidRange("The requested range is not satisfiable", ActualObjectSize=str(size))

"""Event selectors: validation as PutEventSelectors does it, and which records match."""

from __future__ import annotations

from typing import Any

import pytest

from sealbox.audit.selectors import normalize, selects
from sealbox.audit.trail_errors import (
    InvalidEventSelectorsError,
    InvalidParameterCombinationError,
)


def record(
    source: str = "kms.amazonaws.com",
    name: str = "Encrypt",
    *,
    read_only: bool = False,
    data: bool = False,
    arns: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "eventSource": source,
        "eventName": name,
        "readOnly": read_only,
        "managementEvent": not data,
        "eventCategory": "Data" if data else "Management",
        "userIdentity": {"arn": "arn:aws:iam::111122223333:root"},
        "resources": [
            {"ARN": a, "type": "AWS::S3::Object" if "/" in a[13:] else "AWS::S3::Bucket"}
            for a in arns
        ],
    }


def put_object(bucket: str, key: str) -> dict[str, Any]:
    return record(
        "s3.amazonaws.com",
        "PutObject",
        data=True,
        arns=(f"arn:aws:s3:::{bucket}/{key}", f"arn:aws:s3:::{bucket}"),
    )


def test_default_is_every_management_event_and_no_data_event() -> None:
    assert selects(None, None, record())
    assert selects(None, None, record(read_only=True))
    assert not selects(None, None, put_object("b", "k"))


def test_basic_selectors_read_write_exclusions_and_s3_data_resources() -> None:
    basic, advanced = normalize(
        [
            {
                "ReadWriteType": "WriteOnly",
                "IncludeManagementEvents": True,
                "ExcludeManagementEventSources": ["kms.amazonaws.com"],
                "DataResources": [
                    {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::logs/app/"]},
                    {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::whole"]},
                ],
            }
        ],
        None,
    )
    assert advanced is None and basic is not None
    assert not selects(basic, None, record())  # excluded source
    assert selects(basic, None, record("iam.amazonaws.com", "CreateUser"))
    assert not selects(basic, None, record("iam.amazonaws.com", "GetUser", read_only=True))
    assert selects(basic, None, put_object("logs", "app/x"))
    assert not selects(basic, None, put_object("logs", "other/x"))
    assert selects(basic, None, put_object("whole", "any/key"))
    assert not selects(basic, None, put_object("wholesale", "x"))  # a bucket, not a prefix
    everything, _ = normalize(
        [{"IncludeManagementEvents": False, "DataResources": [
            {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}],
        None,
    )  # fmt: skip
    assert everything == [
        {
            "ReadWriteType": "All",
            "IncludeManagementEvents": False,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}],
            "ExcludeManagementEventSources": [],
        }
    ]
    assert selects(everything, None, put_object("any", "k"))
    assert not selects(everything, None, record())


def test_advanced_selectors_match_fields() -> None:
    _, advanced = normalize(
        None,
        [
            {
                "Name": "writes to one bucket",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Data"]},
                    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                    {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::logs/"]},
                    {"Field": "readOnly", "Equals": ["false"]},
                ],
            },
            {
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]},
                ]
            },
        ],
    )
    assert advanced is not None
    assert selects(None, advanced, put_object("logs", "k"))
    assert not selects(None, advanced, put_object("other", "k"))
    assert not selects(None, advanced, record())
    assert selects(None, advanced, record("iam.amazonaws.com", "CreateUser"))


@pytest.mark.parametrize(
    ("basic", "advanced", "error"),
    [
        (None, None, InvalidParameterCombinationError),
        ([{}], [{"FieldSelectors": []}], InvalidParameterCombinationError),
        ([{}] * 6, None, InvalidEventSelectorsError),
        ([{"ReadWriteType": "Sometimes"}], None, InvalidEventSelectorsError),
        ([{"DataResources": [{"Type": "AWS::S3::Nope", "Values": []}]}], None,
         InvalidEventSelectorsError),
        ([{"DataResources": [{"Type": "AWS::S3::Object", "Values": ["bucket"]}]}], None,
         InvalidEventSelectorsError),
        (None, [{"FieldSelectors": [{"Field": "readOnly", "Equals": ["true"]}]}],
         InvalidEventSelectorsError),
        (None, [{"FieldSelectors": [{"Field": "color", "Equals": ["red"]}]}],
         InvalidEventSelectorsError),
        (None, [{"FieldSelectors": [{"Field": "eventCategory"}]}], InvalidEventSelectorsError),
    ],
)  # fmt: skip
def test_invalid_selectors_are_refused(
    basic: list[dict[str, Any]] | None,
    advanced: list[dict[str, Any]] | None,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        normalize(basic, advanced)

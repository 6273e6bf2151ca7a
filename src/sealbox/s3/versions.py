"""Versioning rules shared by PUT, COPY, DELETE and CompleteMultipartUpload."""

from __future__ import annotations

import base64
from collections.abc import Iterable

from sqlalchemy import Connection

from sealbox import crypto
from sealbox.s3.errors import NoSuchBucket
from sealbox.s3.model import NULL_VERSION, Bucket, Extent, ObjectVersion
from sealbox.storage import s3_repo
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import FastConnection


def new_version_id(bucket: Bucket) -> str:
    """A fresh version id when versioning is Enabled; "null" otherwise (never enabled
    or Suspended: the new object takes the null version's place)."""
    if bucket.versioning == "Enabled":
        return base64.urlsafe_b64encode(crypto.random_bytes(24)).decode()
    return NULL_VERSION


def store_version(conn: Connection, obj: ObjectVersion) -> list[Extent]:
    """Make obj the key's latest version; returns extents no version references now.

    The bucket row is locked (shared) first: a concurrent DeleteBucket either sees this
    object and refuses, or wins and this write fails with NoSuchBucket.
    """
    if not s3_repo.lock_bucket(conn, obj.bucket, exclusive=False):
        raise NoSuchBucket("The specified bucket does not exist", BucketName=obj.bucket)
    return s3_repo.put_version(conn, obj)


def store_version_fast(fast: FastConnection, obj: ObjectVersion) -> list[Extent]:
    """store_version inside a Database.fast_transaction (the PUT hot path)."""
    if not s3_repo.fast_lock_bucket(fast, obj.bucket):
        raise NoSuchBucket("The specified bucket does not exist", BucketName=obj.bucket)
    return s3_repo.fast_put_version(fast, obj)


def delete_blobs(blobs: BlobStore, extents: Iterable[Extent]) -> None:
    """After the commit that unreferenced them (a crash before leaves orphans only)."""
    for extent in extents:
        blobs.delete(extent.blob)


def reported_version(bucket: Bucket, version_id: str) -> str | None:
    """x-amz-version-id is returned once a bucket has had versioning configured."""
    return version_id if bucket.versioning is not None else None

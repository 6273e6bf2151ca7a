"""S3Service: the S3 domain services behind one operation table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sealbox.call import Call
from sealbox.clock import Clock
from sealbox.iam.authz import Authorizer
from sealbox.keystore.base import KeyStore
from sealbox.kms.service import KmsService
from sealbox.s3.access import BucketAccess
from sealbox.s3.buckets import BucketService
from sealbox.s3.encryption import Encryption
from sealbox.s3.listing import Lister
from sealbox.s3.multipart import MultipartService
from sealbox.s3.objects import ObjectService
from sealbox.storage.blobstore import BlobStore
from sealbox.storage.db import Database

Handler = Callable[[Call, Mapping[str, Any]], dict[str, Any]]


class S3Service:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        keystore: KeyStore,
        kms: KmsService,
        authorizer: Authorizer,
        blobs: BlobStore,
        count_kms: Callable[[str], None] | None = None,
    ) -> None:
        self.access = BucketAccess(authorizer)
        self.encryption = Encryption(db, keystore, kms, clock, count_kms)
        self.objects = ObjectService(db, clock, self.access, blobs, self.encryption)
        self.buckets = BucketService(db, clock, self.access, blobs)
        self.lister = Lister(db, clock, self.access, blobs)
        self.multipart = MultipartService(self.objects)
        self.blobs = blobs
        self.operations: dict[str, Handler] = {}
        for service in (self.buckets, self.objects, self.lister, self.multipart):
            for name in dir(service):
                if name.startswith("_") or not callable(getattr(service, name)):
                    continue
                operation = "".join(p.capitalize() for p in name.split("_"))
                self.operations.setdefault(operation, getattr(service, name))

"""botocore's service models, used as the shape database of the protocol codecs.

A service model is loaded once per process from botocore's bundled data (the newest API
version botocore ships) and cached; so is the X-Amz-Target → operation table built from it.
"""

from __future__ import annotations

import functools
import threading

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel

from sealbox.errors import UnknownOperationError

__all__ = ["OperationModel", "ServiceModel", "load_service", "operation_for_target"]

# Keyed by id(service); the model is kept in the value so the id cannot be reused.
_TARGETS: dict[int, tuple[ServiceModel, dict[str, OperationModel]]] = {}
_TARGETS_LOCK = threading.Lock()


@functools.cache
def _loader() -> Loader:
    return Loader()


@functools.cache
def load_service(name: str) -> ServiceModel:
    """The botocore ServiceModel of service ``name`` ("kms", "cloudtrail"), loaded once."""
    data = _loader().load_service_model(name, "service-2")
    return ServiceModel(data, service_name=name)


def _target_table(service: ServiceModel) -> dict[str, OperationModel]:
    entry = _TARGETS.get(id(service))
    if entry is not None and entry[0] is service:
        return entry[1]
    prefix = service.metadata.get("targetPrefix", "")
    table = {f"{prefix}.{name}": service.operation_model(name) for name in service.operation_names}
    with _TARGETS_LOCK:
        _TARGETS[id(service)] = (service, table)
    return table


def operation_for_target(service: ServiceModel, target: str) -> OperationModel:
    """The operation an ``X-Amz-Target`` header names, e.g. "TrentService.Encrypt".

    A wrong prefix or an unknown operation name raises UnknownOperationError.
    """
    op = _target_table(service).get(target)
    if op is None:
        shown = target if len(target) <= 128 else target[:128] + "..."
        raise UnknownOperationError(f"Operation {shown!r} is not supported by this service.")
    return op

"""The NBD block server beside the HTTP workers: attached volumes as block devices.

It runs in the `sealbox serve` supervisor process, on its own event loop thread, with
a Runtime of its own (database, root of trust, KMS). AttachVolume and DetachVolume are
handled by HTTP workers, which are other processes: so once a second this process
reconciles its exports with the database and ends the connections of volumes that are
no longer attached as they were (their devices are flushed, then closed).
"""

from __future__ import annotations

import logging
import ssl
import threading

import uvloop

from sealbox.config import Settings
from sealbox.nbd import BackgroundNbdServer, NbdServer
from sealbox.server.runtime import Runtime

log = logging.getLogger("sealbox.nbd")

RECONCILE_SECONDS = 1.0


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTP server's certificate, when it has one, serves NBD over TLS too."""
    if settings.tls_self_signed:
        cert, key = settings.data_dir / "tls-cert.pem", settings.data_dir / "tls-key.pem"
    elif settings.tls_cert is not None and settings.tls_key is not None:
        cert, key = settings.tls_cert, settings.tls_key
    else:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class BlockServer:
    def __init__(self, settings: Settings, port: int) -> None:
        self._runtime = Runtime.build(settings)
        ebs = self._runtime.ebs
        self._nbd = NbdServer(ebs.export, list_exports=ebs.export_names, tls=tls_context(settings))
        ebs.on_detach(self._nbd.disconnect)
        self._runner = BackgroundNbdServer(
            self._nbd, settings.host, port, loop_factory=uvloop.new_event_loop
        )
        self._stop = threading.Event()
        self._reconciler = threading.Thread(
            target=self._reconcile, name="nbd-reconcile", daemon=True
        )

    def start(self) -> int:
        port = self._runner.start()
        self._reconciler.start()
        return port

    def _reconcile(self) -> None:
        while not self._stop.wait(RECONCILE_SECONDS):
            try:
                ended = self._runtime.ebs.reconcile_exports()
                if ended:
                    log.info("ended NBD exports of detached volumes: %s", ", ".join(ended))
            except Exception:
                log.exception("reconciling NBD exports failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        self._runner.stop()
        self._runtime.ebs.exports.close_all()
        self._runtime.close()

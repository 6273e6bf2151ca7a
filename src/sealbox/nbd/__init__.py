"""NBD (Network Block Device) server exporting attached EBS volumes to block clients.

Real clients (nbdinfo, nbdcopy, qemu-img / qemu-nbd URIs, the Linux nbd-client) connect
with the fixed newstyle handshake, pick an export by name (the volume id) and then
read and write it. The volume side is the :class:`sealbox.ebs.device.VolumeDevice`
protocol; the server only speaks the wire protocol:

* :mod:`sealbox.nbd.protocol`: constants and wire structures
* :mod:`sealbox.nbd.handshake`: option haggling (GO, INFO, LIST, EXPORT_NAME, ABORT, STARTTLS)
* :mod:`sealbox.nbd.transmission`: pipelined requests of one connection
* :mod:`sealbox.nbd.ranges`: ordering of overlapping requests and flushes
* :mod:`sealbox.nbd.server`: :class:`NbdServer` (connections, device ownership, shutdown)
* :mod:`sealbox.nbd.background`: :class:`BackgroundNbdServer` (the server in its own thread)
"""

from sealbox.nbd.background import BackgroundNbdServer
from sealbox.nbd.server import NbdServer

__all__ = ["BackgroundNbdServer", "NbdServer"]

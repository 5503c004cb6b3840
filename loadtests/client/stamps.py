"""The kernel's receive timestamp of a read, on our clock.

A plain TCP socket that asks for it (``SO_TIMESTAMPNS``, ``stamp_reads``) gets with each
``recvmsg`` the time the last of the read's bytes reached the socket, so a read made late
(the loop busy with other streams, a garbage-collector pause, the core taken by other work,
``--poll-interval-ms``) is still timed when its bytes arrived. The kernel's clock is the
wall clock; ``kernel_stamp`` moves it onto ``loadtests.client.clock``'s by the two clocks'
difference read right after the read.
"""

from __future__ import annotations

import contextlib
import socket
import struct

__all__ = ["ANCILLARY", "kernel_stamp", "stamp_reads"]

# Linux's receive timestamp (struct timespec: seconds, nanoseconds) on every read.
_SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY = socket.CMSG_SPACE(16)  # recvmsg's room for it
_TIMESPEC = struct.Struct("@qq")


def stamp_reads(raw: socket.socket) -> None:
    """Ask the kernel to stamp every read of ``raw`` (where it cannot, reads come
    unstamped and ``kernel_stamp`` falls back on the time the read returned)."""
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def kernel_stamp(
    ancillary: list[tuple[int, int, bytes]], returned_at: float, wall: float, not_before: float
) -> float:
    """The time the read's last bytes reached the socket, on our clock: its kernel receive
    timestamp (wall clock) less ``wall - returned_at`` (the two clocks' difference, read
    right after the read). ``returned_at`` when there is none, or when it lies outside
    ``not_before`` .. ``returned_at`` (a kernel that stamps otherwise)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            at = seconds + nanoseconds * 1e-9 - (wall - returned_at)
            if not_before <= at <= returned_at:
                return at
    return returned_at

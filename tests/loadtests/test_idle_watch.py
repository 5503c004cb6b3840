"""The idle timeout of a streamed body: one timer a stream (``IdleWatch``), as exact as the
socket timeout it replaces, on real sockets."""

from __future__ import annotations

import gevent
import gevent.socket

from loadtests.client.clock import now
from loadtests.client.transport import IdleTimeout, IdleWatch

IDLE_S = 0.4


def _read_until_idle(writes: int, every_s: float) -> tuple[list[float], float, float]:
    """A reader that reads until the watch fires, a writer that writes ``writes`` times
    ``every_s`` apart and then goes silent: the read times, when the watch fired, and when
    the last write was."""
    ours, theirs = gevent.socket.socketpair()
    reads: list[float] = []
    last_write = [now()]

    def writer() -> None:
        for _ in range(writes):
            gevent.sleep(every_s)
            theirs.sendall(b"x")
            last_write[0] = now()

    def reader() -> float:
        watch = IdleWatch(IDLE_S, started_at=now())
        try:
            while True:
                ours.recv(64)
                watch.last = now()
                reads.append(now())
        except IdleTimeout:
            return now()
        finally:
            watch.close()

    w = gevent.spawn(writer)
    fired = gevent.spawn(reader).get(timeout=30)  # waits for the reader's timeout (~2 s)
    w.join()
    ours.close()
    theirs.close()
    return reads, fired, last_write[0]


def test_reads_closer_together_than_the_idle_time_never_time_out() -> None:
    """Five writes 0.25 s apart take 1.25 s, three times the idle time: the watch, armed
    once, fires early, sees the data since, waits the rest, and fires only after the last
    write's ``IDLE_S`` of silence."""
    reads, fired, last_write = _read_until_idle(writes=5, every_s=0.25)
    assert len(reads) == 5
    assert fired - reads[-1] >= IDLE_S
    assert fired - last_write < IDLE_S + 1.0  # not hanging (generous: a busy machine)


def test_silence_from_the_start_times_out_after_the_idle_time() -> None:
    started = now()
    reads, fired, _ = _read_until_idle(writes=0, every_s=0.0)
    assert reads == []
    assert IDLE_S <= fired - started < IDLE_S + 1.0


def test_a_closed_watch_never_fires() -> None:
    watch = IdleWatch(0.05, started_at=now())
    watch.close()
    gevent.sleep(0.3)  # past its time: nothing is thrown into this greenlet

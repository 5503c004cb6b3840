"""How a slabench locust stops on SIGINT or SIGTERM, whenever the signal comes.

Left to Python and Locust, a stop signal could be lost or cut a stop short:

- Python turns SIGINT into a ``KeyboardInterrupt`` raised in whatever code runs when it
  checks for signals: under gevent, any greenlet. Several of Locust's own catch it and carry
  on (the master's message listener, the stats printer, the stats history), so a Ctrl-C
  could be swallowed while the test ran on.
- A process started with SIGINT ignored (a background job of a non-interactive shell, as
  some CI runners start their commands) keeps ignoring it: Python installs its handler only
  where SIGINT is at its default.
- SIGTERM ends the process on the spot until Locust installs its own handler, just before
  the test starts; and a second signal during the stop (Locust's SIGTERM handler runs a
  second shutdown) could end the process before the run directory was closed.

So slabench takes both signals over as soon as the scenario is imported, through gevent's
signal watchers (the event loop handles the signal in a greenlet of its own; it is never
raised inside other code, and an inherited "ignore" no longer applies), and turns the first
one into one exception thrown into the main greenlet, where it waits:

- before the test can start (Locust creating its runner, the ``init`` listener starting the
  bundled server, asking for the model, a master waiting for its workers, the pre-flight
  requests: the prefix-cache reset and the calibration): ``SystemExit`` with one line and
  exit code 128 + the signal number (0 and no line on a ``--processes`` worker); no load
  was sent, no run directory exists, and what was started stops on the way out (``except
  BaseException`` there);
- once ``init`` is done, in Locust's wait for the test: ``KeyboardInterrupt``, on which Locust
  runs its shutdown, whose ``quitting`` listeners close the run directory with every record
  (or say that the test never started). A SIGTERM there is left to Locust's own handler,
  which runs the same shutdown;
- during a ``--capacity-search`` the signal goes to the search instead (``hand_over``), which
  stops the step in flight and writes what it established.

A stop that is no signal (``-t``, an early stop) cannot come before the test: Locust arms
``-t`` as it starts the test, after ``init``. Should one still cut a test's start short
before its run directory exists, the end says so in one line (``stopped_while_starting``,
exit 2) rather than exit 0 with nothing recorded; and no shutdown waits for a run that was
never opened (``RunState.closed`` is cleared only with a run directory).

Later signals are acknowledged and otherwise ignored: the stop under way is closing the run
directory, which a second Ctrl-C must not cut short. Locust may still run a second shutdown
(its SIGTERM handler, or its main greenlet once the first one quit the runner);
``quitting_first``, the first ``quitting`` listener, lets only the first one through.

A process has one set of signal dispositions, so the ``Stopper`` is one per process
(``STOPPER``), installed by ``harness.events`` at import.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import gevent
from locust.env import Environment

from loadtests.harness.state import RunState, run_state
from sla.errors import EXIT_USAGE

__all__ = ["STOPPER", "Stopper", "quitting_first", "stopped_while_starting", "wait_closed"]

log = logging.getLogger("slabench")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The longest a shutdown waits for another greenlet to close the run: the master's wait for
# its workers' records (30 s) and the end of the run (loading, judging, the report).
_CLOSE_WAIT_S = 120.0


class Stopper:
    """What this process does with SIGINT and SIGTERM (see the module docstring)."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received
        self.quitting = False  # Locust's shutdown began
        self.initialised = False  # `init` is done: Locust's SIGTERM handler comes next
        self.shutdown: Any = None  # the greenlet running the first shutdown
        self.worker = False  # a --processes worker (forked); set on others at `init`
        self._interrupt: Callable[[], None] | None = None
        self._watchers: list[Any] = []

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (in the main thread, once per process)."""
        if not self._watchers:
            self._watchers = [gevent.signal_handler(sig, self._received, sig) for sig in _SIGNALS]
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # A child forked after the scenario was imported: a --processes worker of Locust's.
        self.worker = True

    def hand_over(self, interrupt: Callable[[], None]) -> None:
        """From now on every stop signal calls ``interrupt`` instead (a capacity search: it
        stops the step in flight and ends the search itself)."""
        self._interrupt = interrupt

    @property
    def stopping(self) -> bool:
        """The process is ending: a test must not start any more."""
        return self.signum is not None or self.quitting

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + (self.signum or signal.SIGINT)

    def _received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._interrupt is not None:
            self.signum = self.signum or signum
            self._interrupt()
            return
        if self.stopping:
            print(f"slabench: {name} again: already stopping, the run is being closed", flush=True)
            return
        self.signum = signum
        print(f"slabench: {name} received: stopping", flush=True)
        if signum == signal.SIGTERM and self.initialised:
            return  # Locust's own SIGTERM handler runs the shutdown
        stop = KeyboardInterrupt() if self.initialised else SystemExit(self.stopped_before_test())
        # Thrown now, while the main greenlet waits where it was when we looked (before or
        # in `init`, or in Locust's join on the test); this greenlet resumes afterwards.
        hub = gevent.get_hub()
        hub.loop.run_callback(gevent.getcurrent().switch)
        hub.parent.throw(stop)

    def stopped_before_test(self) -> int:
        """Say (not on a worker) that a stop signal came before the test; the exit code."""
        if self.worker:
            return 0
        print(
            f"slabench: {self.signal_name} before the test started: stopped; nothing was "
            "sent and no run directory was written",
            flush=True,
        )
        return self.exit_code


STOPPER = Stopper()


def quitting_first(environment: Environment, **_: Any) -> None:
    """The first `quitting` listener: only the first shutdown goes on, once any stop under
    way (the -t ending, from a greenlet of its own) has closed the run. A second one (Locust's
    SIGTERM handler beside a Ctrl-C's shutdown, or the main greenlet once the first quit the
    runner) waits here for the first to end the process: going on, Locust's own listeners
    would stop listening to the workers before their last records arrived."""
    STOPPER.quitting = True
    current = gevent.getcurrent()
    if STOPPER.shutdown is None:
        STOPPER.shutdown = current
    elif STOPPER.shutdown is not current:
        gevent.sleep(_CLOSE_WAIT_S)  # the first shutdown's exit ends this wait
        log.error("slabench: the first shutdown did not end the process; ending it again")
        return
    state = run_state(environment)
    if state.stopping_at is not None:  # the test is being stopped: let that stop finish
        wait_closed(state)


def wait_closed(state: RunState) -> bool:
    """Return once no run of this process is being closed (by another greenlet): True, or
    False (said in one line) when it was not closed in time."""
    if state.closed.wait(_CLOSE_WAIT_S):
        return True
    log.error("slabench: the run was not closed within %gs; exiting without it", _CLOSE_WAIT_S)
    return False


def stopped_while_starting() -> int:
    """Say that a stop that was no signal cut the test's start short; the exit code."""
    print(
        "slabench: error: the test was stopped while it started, before its run directory "
        "was written: no load was recorded",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_USAGE

"""A stop asked for by a signal, as rq and huey do it: the handler only sets flags; the loop looks.

The first SIGTERM or SIGINT asks for a warm stop: claim nothing new, let the running batch finish
within `daemon.shutdown_grace`. A second one asks for a cold stop: put the running batch back now.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stop:
    """Whether, and how urgently, the daemon should stop; `wake` interrupts every wait of the loop."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        #: set by file events and signals: the main loop's waits return at once
        self.wake = threading.Event()
        #: a first signal came: claim nothing new
        self.requested = False
        #: a second signal came: stop now
        self.hard = False
        self._deadline = float("inf")

    def request(self) -> None:
        """Ask for a stop; asking twice makes it a cold stop."""
        if self.requested:
            self.hard = True
        else:
            self.requested = True
            self._deadline = time.monotonic() + self.grace
        self.wake.set()

    @property
    def abandon(self) -> bool:
        """Whether running work must go back to the inbox now (a cold stop, or the grace ran out)."""
        return self.hard or (self.requested and time.monotonic() > self._deadline)

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, or until woken."""
        self.wake.wait(timeout=timeout)
        self.wake.clear()

    @contextmanager
    def installed(self) -> Iterator[Stop]:
        """Route SIGTERM and SIGINT here while the block runs; the previous handlers come back after."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request()

        previous = {sig: signal.signal(sig, on_signal) for sig in _SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

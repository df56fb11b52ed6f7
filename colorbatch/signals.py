"""SIGTERM handled like Ctrl-C while a run works: a clean shutdown, then exit 130.

Without this, SIGTERM kills the process where it stands: no summary, no
``run.json``, an empty ``--json`` output, a temporary file left behind and
decoding workers that outlive it. While a :class:`TermAsInterrupt` is armed, the
first SIGTERM raises :class:`KeyboardInterrupt` in the main thread, so the
runner stops the stream, closes its steps (workers, encoders), writes the
summary and ``run.json``, and exits with 130. Signals that arrive while it
shuts down are recorded and ignored. A handler installed by someone else (the
watch command, the training loop) is left alone.
"""
from __future__ import annotations

import signal
import threading


class TermAsInterrupt:
    def __init__(self) -> None:
        self.installed = False
        self.armed = False
        self.received: int | None = None
        self._old = None

    def __enter__(self) -> "TermAsInterrupt":
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            current = signal.getsignal(signal.SIGTERM)
        except (AttributeError, ValueError):  # a platform without SIGTERM
            return self
        if current in (signal.SIG_DFL, None):
            self._old = signal.signal(signal.SIGTERM, self._handler)
            self.installed = True
            self.armed = True
        return self

    def _handler(self, signum, frame) -> None:
        self.received = signum
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def disarm(self) -> None:
        """From now on a SIGTERM is only recorded (the run is shutting down)."""
        self.armed = False

    def __exit__(self, *exc) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self._old if self._old is not None else signal.SIG_DFL)
            self.installed = False

"""A background poller: a tick every ``poll_interval_s`` in a daemon thread.

The model holder (the active version) and the catalogue (retired items) poll the store the same
way, and so does the job worker (queued jobs), which also ticks again at once after a job ran
and can be woken early (a retrain was just queued). A failed tick (database down) is logged
and tried again at the next one.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Poller:
    """Mixin: the subclass sets ``poll_interval_s`` and defines ``refresh()``, or overrides
    :meth:`poll` (one tick, which says whether the next one should follow at once)."""

    thread_name = "poller"
    what = "polling the store"  # "checking <what> failed: ..." in the log
    poll_interval_s: float
    poll_at_start = False  # the first tick runs as the thread starts (else after an interval)

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()  # ends the current wait early (wake(), stop())
        self._thread: threading.Thread | None = None

    def refresh(self) -> object:
        raise NotImplementedError(f"{type(self).__name__} defines refresh() or poll()")

    def poll(self) -> bool:
        """One tick: ``refresh()``. ``True`` when there is more to do at once (no wait)."""
        self.refresh()
        return False

    def wake(self) -> None:
        """Tick now instead of at the end of the current wait."""
        self._wake.set()

    def start(self) -> None:
        """Poll in a daemon thread (once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run_forever, name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop (after the tick under way) and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def run_forever(self) -> None:
        """Tick until :meth:`stop` (the thread :meth:`start` runs, or the caller's own)."""
        busy = self.poll_at_start
        while not self._stop.is_set():
            if not busy:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()
                if self._stop.is_set():
                    return
            try:
                busy = self.poll()
            except Exception as exc:  # noqa: BLE001 - database down: try again next tick
                log.warning("checking %s failed: %s", self.what, exc)
                busy = False

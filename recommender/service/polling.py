"""A background poller: ``refresh()`` every ``poll_interval_s`` in a daemon thread.

The model holder (the active version) and the catalogue (retired items) poll the store the same
way; a failed refresh (database down) is logged and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Poller:
    """Mixin: the subclass sets ``poll_interval_s`` and defines ``refresh()``."""

    thread_name = "poller"
    what = "polling the store"  # "checking <what> failed: ..." in the log
    poll_interval_s: float

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Poll in a daemon thread (once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()  # type: ignore[attr-defined]  # defined by the subclass
            except Exception as exc:  # noqa: BLE001 - database down: try again next tick
                log.warning("checking %s failed: %s", self.what, exc)

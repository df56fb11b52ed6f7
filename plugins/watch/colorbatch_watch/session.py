"""The state of one watch session: what was taken, what came of it, the log.

Exactly-once across restarts comes from the ``save`` step's manifest in the
output folder (the runner skips items it says are done). The session adds
what the manifest cannot know:

* a processed set for this session, so a repeated event for a file version
  already taken is ignored (a new size or mtime is a new version, taken again);
* the failures of earlier sessions, read back from the event log
  (``OUT/.colorbatch-watch.jsonl``), so a corrupt file is reported once and not
  retried in a loop, across restarts too, until it is replaced;
* retries with backoff while the output folder cannot be written.

Outcomes arrive through the lifecycle hooks (``saved`` and ``item_skipped``
events, ``colorbatch_item_failed``), matched by the item's input path.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
from pathlib import Path

from colorbatch_watch.files import FileKey

LOG_NAME = ".colorbatch-watch.jsonl"

#: Steps whose failures mean "the output could not be written": retried.
OUTPUT_STEPS = {"save"}

MAX_OUTPUT_ATTEMPTS = 3  # per file version while the output folder itself is writable
BACKOFF_START = 1.0
BACKOFF_MAX = 60.0


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"


class EventLog:
    """Append-only JSONL log in the output folder; survives an unwritable folder.

    Records that cannot be written yet are kept (up to ``keep`` of them) and
    written when the folder becomes writable again.
    """

    def __init__(self, path: Path | None, keep: int = 10000):
        self.path = path
        self._fh = None
        self._backlog: collections.deque = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self.error: str | None = None

    def write(self, record: dict) -> None:
        if self.path is None:
            return
        line = json.dumps(record, default=str)
        with self._lock:
            self._backlog.append(line)
            self._drain()

    def _drain(self) -> None:
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")
            while self._backlog:
                self._fh.write(self._backlog[0] + "\n")
                self._backlog.popleft()
            self._fh.flush()
            self.error = None
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                self._fh = None

    def close(self) -> None:
        with self._lock:
            if self._backlog:
                self._drain()
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                self._fh = None


def read_failures(path: Path) -> dict[str, FileKey]:
    """Failed file versions recorded by earlier sessions: id -> key.

    A later ``done`` (or a ``failed`` of another version) replaces the entry.
    """
    out: dict[str, FileKey] = {}
    try:
        fh = open(path, encoding="utf-8")
    except OSError:
        return out
    with fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash
            item = rec.get("item")
            if not isinstance(item, str):
                continue
            if rec.get("event") == "failed" and rec.get("size") is not None:
                out[item] = FileKey(int(rec["size"]), int(rec["mtime_ns"]))
            elif rec.get("event") in ("done", "skipped", "retry_cleared"):
                out.pop(item, None)
    return out


class WatchSession:
    """Counters, outcomes and the stop request of one ``colorbatch watch`` run."""

    def __init__(self, root: Path, out: Path | None, *, retry_failed: bool = False):
        self.root = Path(root)
        self.out = Path(out) if out is not None else None
        self.log = EventLog(self.out / LOG_NAME if self.out is not None else None)
        self.previous_failures: dict[str, FileKey] = {}
        if self.out is not None and not retry_failed:
            self.previous_failures = read_failures(self.out / LOG_NAME)
        self.processed: dict[str, FileKey] = {}  # id -> version taken in this session
        self.inflight: dict[str, tuple[str, FileKey]] = {}  # input path -> (id, key)
        self.output_attempts: dict[str, int] = {}
        self.retry_queue: list[tuple[Path, float]] = []  # (path, not_before) to hand back
        self.output_blocked_until = 0.0
        self.backoff = 0.0
        self.counts = collections.Counter()  # queued, done, skipped, failed, retried
        self.done_times: collections.deque = collections.deque(maxlen=2000)
        self.started = time.time()
        self.stop_requested = False
        self.stop_signal: int | None = None
        self._signals_seen = 0
        self._old_handlers: dict = {}
        self.ctx = None
        self.watcher = None
        self.watching = False  # True once the source started (the run got that far)

    # ---- taking files ----------------------------------------------------
    def should_take(self, item_id: str, key: FileKey) -> str | None:
        """None when this file version should be processed, else why not."""
        if self.processed.get(item_id) == key:
            return "already taken in this session"
        if self.previous_failures.get(item_id) == key:
            return "failed in an earlier session (replace the file, or use --retry-failed)"
        return None

    def taken(self, path: Path, item_id: str, key: FileKey, reason: str) -> None:
        self.processed[item_id] = key
        self.inflight[str(path)] = (item_id, key)
        self.counts["queued"] += 1  # not logged: done/failed/retry lines say what came of it

    # ---- outcomes (called from the lifecycle hooks) -------------------------
    def _resolve(self, label: str | None, item_id: str | None = None):
        if label is not None and label in self.inflight:
            return label, self.inflight.pop(label)
        if item_id is not None:
            for p, (iid, key) in list(self.inflight.items()):
                if iid == item_id:
                    return p, self.inflight.pop(p)
        return None, None

    def on_saved(self, data: dict) -> None:
        path, found = self._resolve(str(data.get("input")) if data.get("input") else None, data.get("item"))
        if found is None:
            return
        item_id, key = found
        self.counts["done"] += 1
        self.done_times.append(time.monotonic())
        self.output_attempts.pop(item_id, None)
        self.backoff = 0.0
        self.record("done", item=item_id, output=str(data.get("output", "")), size=key.size,
                    mtime_ns=key.mtime_ns)

    def on_skipped(self, data: dict) -> None:
        path, found = self._resolve(str(data.get("item")) if data.get("item") else None)
        if found is None:
            return
        item_id, key = found
        self.counts["skipped"] += 1  # done in an earlier session: counted, not logged

    def on_failed(self, step_uses: str | None, label: str, error: str) -> None:
        path, found = self._resolve(label)
        if found is None:
            return
        item_id, key = found
        if step_uses in OUTPUT_STEPS:
            n = self.output_attempts.get(item_id, 0) + 1
            self.output_attempts[item_id] = n
            writable = self.out is None or output_writable(self.out)
            if not writable or n < MAX_OUTPUT_ATTEMPTS:
                self.backoff = min(BACKOFF_MAX, max(BACKOFF_START, self.backoff * 2))
                due = time.monotonic() + self.backoff
                if not writable:
                    self.output_blocked_until = max(self.output_blocked_until, due)
                self.processed.pop(item_id, None)  # to be taken again
                self.retry_queue.append((Path(path), due))
                self.counts["retried"] += 1
                self.record("retry", item=item_id, error=error, attempt=n, in_seconds=self.backoff)
                if self.ctx is not None:
                    self.ctx.warn(f"{item_id}: output not written; retrying in {self.backoff:.0f} s")
                return
        self.counts["failed"] += 1
        self.output_attempts.pop(item_id, None)
        self.record("failed", item=item_id, step=step_uses, error=error, size=key.size,
                    mtime_ns=key.mtime_ns)

    def is_retrying(self, label: str) -> bool:
        return any(str(p) == label for p, _ in self.retry_queue)

    # ---- reporting ------------------------------------------------------
    def record(self, event: str, **data) -> None:
        self.log.write({"time": _now_iso(), "event": event, **data})

    def rate(self, window: float = 60.0) -> float:
        """Outputs per second over the last ``window`` seconds (or since the first one)."""
        if not self.done_times:
            return 0.0
        now = time.monotonic()
        recent = [t for t in list(self.done_times) if now - t <= window]  # list(): atomic copy (status thread)
        if not recent:
            return 0.0
        return len(recent) / max(recent[-1] - recent[0], 1.0)  # while busy, not diluted by idle time

    def pending(self) -> int:
        """Files seen and not finished: settling, waiting for a retry, or in the pipeline."""
        tracker = self.watcher.tracker if self.watcher is not None else None
        settling = len(tracker) - tracker.waiting_for_content() if tracker is not None else 0
        return settling + len(self.inflight) + len(self.retry_queue)

    def stats(self) -> dict:
        c = self.counts
        return {
            "root": str(self.root),
            "out": str(self.out) if self.out else None,
            "queued": self.pending(),
            "taken": c["queued"],
            "done": c["done"],
            "skipped": c["skipped"],
            "failed": c["failed"],
            "retried": c["retried"],
            "rate": round(self.rate(), 3),
            "seconds": round(time.time() - self.started, 3),
            "stop_signal": signal.Signals(self.stop_signal).name if self.stop_signal else None,
        }

    def status_line(self, extra: str = "") -> str:
        s = self.stats()
        text = (
            f"watching {self.root}: {s['queued']} queued, {s['done']} done, {s['skipped']} skipped, "
            f"{s['failed']} failed, {s['rate']:.2f} img/s"
        )
        if extra:
            text += f" ({extra})"
        return text

    # ---- stopping -------------------------------------------------------
    def request_stop(self, signum: int | None = None) -> None:
        self.stop_requested = True
        if signum is not None and self.stop_signal is None:
            self.stop_signal = signum

    def _on_signal(self, signum, frame) -> None:
        self._signals_seen += 1
        if self._signals_seen == 1:
            self.request_stop(signum)
            return
        # a second signal: abandon the current batch at once (outputs are atomic)
        raise KeyboardInterrupt

    def install_signal_handlers(self) -> bool:
        """SIGTERM and SIGINT ask for a clean stop; a second one abandons. Main thread only."""
        if threading.current_thread() is not threading.main_thread() or self._old_handlers:
            return False
        for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
            if sig is None:
                continue
            try:
                if sig == getattr(signal, "SIGHUP", None) and signal.getsignal(sig) is not signal.SIG_DFL:
                    continue  # e.g. nohup: leave an ignored hang-up ignored
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):
                pass
        return True

    def restore_signal_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError, TypeError):
                pass
        self._old_handlers = {}

    def close(self) -> None:
        self.log.close()


def output_writable(folder: Path) -> bool:
    """True when a file can be created in ``folder`` (created if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".colorbatch-watch-probe-{os.getpid()}"
        with open(probe, "w") as fh:
            fh.write("x")
        os.unlink(probe)
        return True
    except OSError:
        return False

"""The ``watch`` source: an unbounded stream of items for files that appear.

Use it in a recipe with ``layout = "watch"`` on the load step, or through
``colorbatch watch IN --out OUT``. It yields an item for every complete image
under the folder (those there at start, then each new or replaced one) and a
flush marker whenever it has nothing ready, so that a batching step processes
what it holds instead of waiting for a full batch.

Settings come from the ``colorbatch watch`` command (a ``WatchConfig`` in the run state)
or, in a recipe, from the load step's ``source_options`` table (validated by
:class:`SourceOptions`): ``settle`` (seconds, default 2), ``poll`` (polling
observer, for network shares), ``poll_interval``, ``rescan`` (seconds between
safety rescans, default 30), ``once`` (process what is there, then end),
``retry_failed``. The environment variables ``COLORBATCH_WATCH_SETTLE``,
``_POLL``, ``_POLL_INTERVAL``, ``_RESCAN``, ``_ONCE``, ``_RETRY_FAILED`` give
the defaults.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from colorbatch.api import ColorbatchError
from colorbatch.api import Item, flush_marker

from colorbatch_watch.files import FileKey, PathFilter, SettleTracker
from colorbatch_watch.session import WatchSession, output_writable

EVENT_QUEUE_SIZE = 10000  # events beyond this are dropped and a rescan is scheduled


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ColorbatchError(f"{name}={value!r}: expected a number of seconds") from None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class WatchConfig:
    settle: float = 2.0
    poll: bool = False
    poll_interval: float = 1.0
    rescan: float = 30.0
    once: bool = False
    retry_failed: bool = False
    status: object = None  # callable(session) for a live status display, or None

    @classmethod
    def from_env(cls) -> "WatchConfig":
        return cls(
            settle=_env_float("COLORBATCH_WATCH_SETTLE", 2.0),
            poll=_env_flag("COLORBATCH_WATCH_POLL"),
            poll_interval=_env_float("COLORBATCH_WATCH_POLL_INTERVAL", 1.0),
            rescan=_env_float("COLORBATCH_WATCH_RESCAN", 30.0),
            once=_env_flag("COLORBATCH_WATCH_ONCE"),
            retry_failed=_env_flag("COLORBATCH_WATCH_RETRY_FAILED"),
        )


def source_options_model():
    """The schema of ``source_options`` for ``layout = "watch"`` (defaults from the environment)."""
    from pydantic import BaseModel, ConfigDict, Field

    env = WatchConfig.from_env()

    class SourceOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        settle: float = Field(env.settle, ge=0, description="Seconds a file must be unchanged before it is taken.")
        poll: bool = Field(env.poll, description="Poll instead of file events (network shares).")
        poll_interval: float = Field(env.poll_interval, gt=0, description="Seconds between polls.")
        rescan: float = Field(env.rescan, gt=0, description="Seconds between safety rescans of the folder.")
        once: bool = Field(env.once, description="Process what is there, then end.")
        retry_failed: bool = Field(env.retry_failed, description="Retry files that failed before.")

    return SourceOptions


def _output_folders(ctx) -> list[Path]:
    """The ``out`` folders of the plan's steps (to keep out of the watch, and to log in)."""
    outs = []
    plan = getattr(ctx, "plan", None)
    for cfg in getattr(plan, "steps", []) or []:
        value = getattr(cfg.options, "out", None)
        if isinstance(value, (str, Path)) and str(value):
            outs.append(Path(value).expanduser().resolve())
    return outs


def enumerate_watch(source, options, ctx):
    """SourceDef.enumerate for ``layout = "watch"``: checks now, streams later."""
    if getattr(ctx, "world_size", 1) > 1:
        raise ColorbatchError("the watch source runs in one process; start it without torchrun")
    root = Path(str(source)).expanduser()
    if not root.exists():
        raise ColorbatchError(f"{root}: watch folder not found; create it or check the path")
    if not root.is_dir():
        raise ColorbatchError(f"{root}: not a folder; the watch source needs a folder to watch")
    root = root.resolve()
    state = ctx.state
    config = state.find(WatchConfig)  # set by the command; else the recipe's options, else the environment
    if config is None:
        given = getattr(options, "source_options", None)
        if given is not None and hasattr(given, "model_dump"):
            config = WatchConfig(**given.model_dump())
        else:
            config = WatchConfig.from_env()
    outs = _output_folders(ctx)
    if root in outs:
        raise ColorbatchError(f"{root}: the output folder cannot be the watched folder; pick another --out")
    session = state.find(WatchSession)
    if session is None:
        session = state.put(WatchSession(root, outs[0] if outs else None, retry_failed=config.retry_failed))
    session.ctx = ctx
    watcher = FolderWatcher(root, config, session, exclude=outs)
    session.watcher = watcher
    return watcher.items()


class _Handler:
    """watchdog event handler: pushes (path, moved) onto a bounded queue."""

    def __init__(self, events: "queue.Queue", overflow: threading.Event):
        self.events = events
        self.overflow = overflow

    def dispatch(self, event) -> None:
        kind = event.event_type
        if kind in ("deleted", "opened", "closed_no_write"):
            return
        if event.is_directory and kind not in ("created", "moved"):
            return  # a folder "modified" is just a file created in it: that file has its own event
        if kind == "moved":
            path, moved = event.dest_path, True
        else:
            path, moved = event.src_path, False
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            self.events.put_nowait((path, moved, event.is_directory))
        except queue.Full:
            self.overflow.set()


class FolderWatcher:
    """Turns file-system events and rescans into a stream of items."""

    def __init__(self, root: Path, config: WatchConfig, session: WatchSession, exclude=()):
        self.root = root
        self.config = config
        self.session = session
        self.filter = PathFilter(root, exclude)
        self.tracker = SettleTracker(config.settle, mtime_shortcut=not config.poll)
        self.events: queue.Queue = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self.overflow = threading.Event()
        self.observer = None
        self.index = 0
        self.mode = "once" if config.once else ("polling" if config.poll else "inotify")

    # ---- observer -------------------------------------------------------
    def _start_observer(self) -> None:
        handler = _Handler(self.events, self.overflow)
        if self.config.poll:
            from watchdog.observers.polling import PollingObserver

            observer = PollingObserver(timeout=self.config.poll_interval)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        try:
            observer.schedule(handler, str(self.root), recursive=True)
            observer.start()
        except Exception as exc:  # noqa: BLE001 - e.g. inotify watch limit reached
            if self.config.poll:
                raise ColorbatchError(f"{self.root}: cannot watch this folder: {exc}") from None
            from watchdog.observers.polling import PollingObserver

            self._warn(f"file events unavailable ({exc}); polling {self.root} instead")
            self.mode = "polling"
            observer = PollingObserver(timeout=self.config.poll_interval)
            observer.schedule(handler, str(self.root), recursive=True)
            observer.start()
        self.observer = observer

    def shutdown(self) -> None:
        """Stop the observer thread (idempotent)."""
        self._stop_observer()

    def _stop_observer(self) -> None:
        if self.observer is not None:
            try:
                self.observer.stop()
                self.observer.join(timeout=5)
            except Exception:  # noqa: BLE001
                pass
            self.observer = None

    def _warn(self, message: str) -> None:
        ctx = self.session.ctx
        if ctx is not None:
            ctx.warn(message)

    # ---- feeding the tracker -------------------------------------------
    def _rescan(self, top: Path | None = None) -> None:
        for path in self.filter.scan(top):
            self._consider(path, moved=False)

    def _consider(self, path: Path, moved: bool) -> None:
        if path in self.tracker:
            self.tracker.touch(path, moved=moved)
            return
        rel = self.filter.relative(path)
        key = FileKey.of(path)
        if rel is None or key is None:
            return
        if self.session.processed.get(rel) == key:
            return  # this version was taken already
        self.tracker.touch(path, moved=moved)

    def _drain_events(self, timeout: float) -> None:
        try:
            first = self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return
        batch = [first]
        while len(batch) < EVENT_QUEUE_SIZE:
            try:
                batch.append(self.events.get_nowait())
            except queue.Empty:
                break
        folders: set[Path] = set()
        for raw, moved, is_dir in batch:
            path = Path(raw)
            if is_dir:  # a folder created or moved in: its files may have no events of their own
                if not self.filter.excluded_dir(path) and self.filter.relative(path) not in (None, "", "."):
                    folders.add(path)
                continue
            if self.filter.accepts(path):
                self._consider(path, moved)
        for folder in sorted(folders):
            if not any(p in folders for p in folder.parents):  # a parent's scan covers it
                self._rescan(folder)

    # ---- the stream -----------------------------------------------------
    def _make_item(self, path: Path, key) -> Item | None:
        rel = self.filter.relative(path)
        why = self.session.should_take(rel, key)
        if why is not None:
            return None
        item = Item(
            id=rel,
            path=path,
            root=self.root,
            kind="image",
            meta={"index": self.index, "file_size": key.size, "mtime_ns": key.mtime_ns, "source": "watch"},
        )
        self.index += 1
        return item

    def _output_ok(self) -> bool:
        """False while the output folder is known to be unwritable (probe with backoff)."""
        s = self.session
        if s.out is None or s.output_blocked_until == 0.0:
            return True
        if time.monotonic() < s.output_blocked_until:
            return False
        if output_writable(s.out):
            s.output_blocked_until = 0.0
            s.record("output_writable", out=str(s.out))
            return True
        s.backoff = min(60.0, max(1.0, s.backoff * 2))
        s.output_blocked_until = time.monotonic() + s.backoff
        self._warn(f"output folder {s.out} is not writable; retrying in {s.backoff:.0f} s")
        s.record("output_blocked", out=str(s.out), retry_in=s.backoff)
        return False

    def items(self) -> Iterator[Item]:
        s = self.session
        ctx = s.ctx
        installed = s.install_signal_handlers()
        yielded_since_flush = 0
        try:
            if not self.config.once:
                self._start_observer()
            self._rescan()
            s.watching = True
            s.record("started", root=str(self.root), out=str(s.out) if s.out else None, mode=self.mode,
                     settle=self.config.settle, pending=len(self.tracker))
            if ctx is not None:
                ctx.event("watch_started", {"root": str(self.root), "out": str(s.out) if s.out else None,
                                            "mode": self.mode, "settle": self.config.settle})
            next_rescan = time.monotonic() + self.config.rescan
            last_status = 0.0
            while not s.stop_requested:
                # files whose output could not be written come back after their backoff
                if s.retry_queue:
                    for path, due in s.retry_queue:
                        self.tracker.touch(path, not_before=due)
                    s.retry_queue.clear()
                ready = self.tracker.ready(limit=64) if self._output_ok() else []
                for path, key in ready:
                    item = self._make_item(path, key)
                    if item is None:
                        continue
                    s.taken(path, item.id, key, reason="found")
                    yielded_since_flush += 1
                    yield item
                    if s.stop_requested:
                        break
                if s.stop_requested:
                    break
                now = time.monotonic()
                if now - last_status >= 1.0:
                    last_status = now
                    self._publish(ctx)
                    if self.config.status is not None:
                        self.config.status(s)
                if ready:
                    continue  # more may be ready right away
                if yielded_since_flush:
                    yielded_since_flush = 0
                    yield flush_marker()  # idle: let batching steps work on what they hold
                    continue
                if self.config.once and not s.retry_queue and self.tracker.waiting_for_content() == len(self.tracker):
                    # everything there at start is done (empty files stay for a later run)
                    break
                if self.config.once and s.output_blocked_until:
                    self._warn(f"output folder {s.out} is not writable; --once gives up")
                    s.counts["failed"] += len(self.tracker) - self.tracker.waiting_for_content()
                    break
                if self.overflow.is_set() or now >= next_rescan:
                    self.overflow.clear()
                    next_rescan = now + self.config.rescan
                    self._rescan()
                    continue
                due = self.tracker.next_due()
                wait = 0.25 if due is None else min(0.25, max(0.02, due))
                if self.config.once:
                    time.sleep(wait)
                else:
                    self._drain_events(wait)
            if yielded_since_flush:
                yield flush_marker()
        finally:
            self.shutdown()
            if installed:
                s.restore_signal_handlers()
            self._publish(ctx)
            if s.watching:
                stats = s.stats()
                s.record("stopped", **{k: v for k, v in stats.items() if k not in ("root", "out")})
                if ctx is not None:
                    try:
                        ctx.event("watch_stopped", stats)
                    except Exception:  # noqa: BLE001 - the run may be closing
                        pass
            s.close()

    def _publish(self, ctx) -> None:
        """Report the counters as run facts, so run.json's summary carries them."""
        if ctx is None:
            return
        c = self.session.counts
        ctx.state.facts.update({f"watch_{k}": c[k] for k in ("done", "failed", "skipped", "retried")})

"""RunSummary: what a run did (counts, per-step stats, failures, versions); the CLI, run.json and plugins share it."""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorbatch import __version__
from colorbatch.errors import ExitCode


def versions() -> dict:
    """colorbatch, python, and torch/torchvision when they are loaded."""
    info = {"colorbatch": __version__, "python": platform.python_version()}
    for mod in ("torch", "torchvision"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "?")
    return info


def exit_code_for(status: str, failed: int, error: BaseException | None = None) -> int:
    """The documented exit code of a run that ended with ``status``."""
    if status in ("ok", "items_failed"):
        return int(ExitCode.ITEMS_FAILED if failed else ExitCode.OK)
    if status == "interrupted":
        return int(ExitCode.INTERRUPTED)
    if status == "failed":
        return int(getattr(error, "exit_code", ExitCode.ITEMS_FAILED))
    return int(ExitCode.INTERNAL)


@dataclass
class RunSummary:
    """The summary of a run (or of a run still going: ``status="running"``).

    ``to_dict()`` is the JSON of ``--json``, ``run.json`` and the ``summary`` that
    ``colorbatch_run_finished`` receives.
    """

    recipe: str
    source: str
    status: str
    ok: int
    failed: int
    skipped: int
    seconds: float
    steps: dict[str, dict] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)
    run_dir: str | None = None
    device: str = "cpu"
    started: str = ""
    world_size: int = 1
    error: str | None = None
    exit_code: int | None = None
    versions: dict = field(default_factory=versions)

    @classmethod
    def of(cls, run, *, status: str, ok: int | None = None, error: str | None = None,
           exception: BaseException | None = None) -> "RunSummary":
        """The summary of ``run`` (a RunContext) now; ``ok`` defaults to what the last step produced."""
        steps = {sid: st.as_dict() for sid, st in run.stats.items()}
        if ok is None:
            last = run.plan.steps[-1].id if run.plan.steps else None
            ok = steps.get(last, {}).get("ok", 0)
        failed = len(run.failures)
        if status == "ok" and failed:
            status = "items_failed"
        final = status != "running"
        return cls(
            recipe=run.plan.name,
            source=run.plan.source,
            status=status,
            error=error,
            ok=ok,
            failed=failed,
            skipped=sum(s.skipped for s in run.stats.values()),
            seconds=round(time.time() - run.started, 3),
            steps=steps,
            failures=run.failures if final else list(run.failures),
            state=run.state_summary(),
            run_dir=str(run.run_dir) if run.run_dir else None,
            device=run.device,
            started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(run.started)),
            world_size=run.world_size,
            exit_code=exit_code_for(status, failed, exception) if final else None,
        )

    @property
    def rate(self) -> float:
        return round(self.ok / self.seconds, 3) if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {
            "recipe": self.recipe,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "ok": self.ok,
            "failed": self.failed,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "rate": self.rate,
            "steps": self.steps,
            "failures": self.failures,
            "state": self.state,
            "run_dir": self.run_dir,
            "versions": self.versions,
            "device": self.device,
            "started": self.started,
            "world_size": self.world_size,
        }
        if self.exit_code is not None:
            d["exit_code"] = self.exit_code
        return d


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, Path))

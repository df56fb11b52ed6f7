"""Hook implementations of the watch plugin (entry point ``watch`` in group ``colorbatch``).

Registers the ``watch`` source and the ``colorbatch watch`` command, and
listens to the lifecycle hooks to learn what became of each file it handed
on (saved, skipped as done, failed). Nothing heavy is imported here.
"""
from __future__ import annotations

from colorbatch.api import hookimpl


def _session(run):
    """The run's live watch session (None when the run watches nothing)."""
    from colorbatch_watch.session import WatchSession

    find = getattr(getattr(run, "state", None), "find", None)
    return find(WatchSession) if find is not None else None


@hookimpl
def colorbatch_register_sources():
    from colorbatch.api import SourceDef

    from colorbatch_watch.source import enumerate_watch, source_options_model

    return [
        SourceDef(
            name="watch",
            enumerate=enumerate_watch,
            options=source_options_model,
            help="a folder watched for new images (unbounded; see `colorbatch watch --help`)",
        )
    ]


@hookimpl
def colorbatch_register_commands(app):
    from colorbatch_watch.command import register

    register(app)


@hookimpl
def colorbatch_event(run, name, data):
    session = _session(run)
    if session is None or not isinstance(data, dict):
        return
    if name == "saved":
        session.on_saved(data)
    elif name == "item_skipped":
        session.on_skipped(data)


@hookimpl
def colorbatch_item_failed(run, step, item, error):
    session = _session(run)
    if session is None:
        return
    label = getattr(item, "label", None)
    if label is None:
        return
    session.on_failed(getattr(step, "uses", None), str(label), str(error))


@hookimpl(tryfirst=True)
def colorbatch_run_finished(run, summary):
    """Add the watch session's figures to the summary observers receive."""
    session = _session(run)
    if session is not None and isinstance(summary, dict):
        summary["watch"] = session.stats()

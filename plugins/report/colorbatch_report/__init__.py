"""colorbatch-report: a self-contained HTML report of every colorbatch run.

The ``report`` step (in a recipe) and ``colorbatch report RUN_DIR`` (after the
fact) write ``index.html`` + ``report.json`` + ``thumbs/`` into a folder.
"""
__version__ = "0.1.0"

"""colorbatch-autocontrast: the example third-party colorbatch plugin.

It adds one step, ``autocontrast``, through the ``colorbatch_register_steps``
hook. colorbatch finds this module through the ``colorbatch`` entry point in
pyproject.toml. The hook imports the step lazily, so loading the plugin costs
nothing until a recipe uses it.
"""
from __future__ import annotations

from colorbatch.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def colorbatch_register_steps():
    from colorbatch_autocontrast.step import STEP

    return [STEP]

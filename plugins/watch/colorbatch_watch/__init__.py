"""colorbatch-watch: watch a folder and colorize every complete image put into it, exactly once.

The plugin adds the ``colorbatch watch`` command and the ``watch`` source
(``layout = "watch"`` on a recipe's load step). See README.md.
"""

__version__ = "0.1.0"

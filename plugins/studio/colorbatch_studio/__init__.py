"""colorbatch-studio: a local web page to review a folder, place colour hints and adjust colour.

The plugin adds the ``colorbatch studio FOLDER [--out OUT]`` command. See README.md
and docs/studio.md in the colorbatch repository.
"""

__version__ = "0.1.0"

"""What every tasks module needs and nothing else: the error type and where the packaged task
files lie (so the spec and the builders import it instead of each other)."""

from __future__ import annotations

from pathlib import Path

#: Folder of the packaged task files (``list_tasks`` lists its ``*.yaml``).
TASKS_DIR = Path(__file__).resolve().parent / "data"
#: Template word lists used by the builders (not task files themselves).
TEMPLATES_DIR = TASKS_DIR / "templates"


class TaskError(ValueError):
    """A malformed task definition or data file; the message names file, line and key."""

"""Progress bars: one factory shape, ``factory(desc, total, unit="text") -> bar`` (``update``,
``close``), that every runner accepts as ``progress``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

ProgressFactory = Callable[..., Any]


def tqdm_factory(enabled: bool = True) -> ProgressFactory:
    """tqdm bars, shown only when ``enabled`` and both stdout and stderr are terminals (piped
    or redirected output gets no bar)."""
    from tqdm.auto import tqdm

    disable = not enabled or not (sys.stderr.isatty() and sys.stdout.isatty())

    def factory(desc: str, total: int, unit: str = "text") -> Any:
        return tqdm(total=total, desc=desc, disable=disable, unit=unit)

    return factory


def progress_factory(progress: bool | ProgressFactory) -> ProgressFactory | None:
    """``True``: tqdm bars (on a terminal); a callable: used as is; ``False``: none."""
    if callable(progress):
        return progress
    return tqdm_factory() if progress else None

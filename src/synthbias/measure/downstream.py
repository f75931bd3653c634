"""Deprecated name of :mod:`synthbias.measure.probes` (the pronoun probe), kept for one release.

"Downstream" means the ten tasks of :mod:`synthbias.tasks`; the probe module was renamed so one
word has one meaning.
"""

from __future__ import annotations

import warnings

from synthbias.measure.probes import *  # noqa: F403
from synthbias.measure.probes import __all__  # noqa: F401

warnings.warn(
    "synthbias.measure.downstream is deprecated, use synthbias.measure.probes",
    DeprecationWarning,
    stacklevel=2,
)

"""The studies: each is a config section, a sequence of named cached steps, a summary and report
pages (equilibrium, inheritance, mitigation), plus the audit, forecast and probe.

Importing this package registers every study in :data:`synthbias.core.registry.STUDIES` (each
study's package does it: its runner, config section, console printer and report pages, which
register with :func:`synthbias.report.html.register_section`), the generic report sections every
kind gets, and the pronoun probe's metric family (``probe.gender.*``, registered by
:mod:`synthbias.studies.probe`). The forecast is not imported here: it reads whole configs,
so it sits beside the entry points' imports.
"""

from synthbias.report import generic as _generic_sections  # noqa: F401 - registers the sections
from synthbias.studies import attribution, audit, equilibrium, inheritance, mitigation, probe

__all__ = ["attribution", "audit", "equilibrium", "inheritance", "mitigation", "probe"]

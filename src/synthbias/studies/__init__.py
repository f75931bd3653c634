"""The studies: each is a config section, a sequence of named cached steps, a summary and report
pages (equilibrium, inheritance, mitigation), plus the audit, forecast and probe.

Importing this package registers every study's report pages with the report engine
(:func:`synthbias.report.html.register_section`), and the generic sections every kind gets; the
runners themselves load on demand.
"""

from synthbias.report import generic as _generic_sections  # noqa: F401
from synthbias.studies.audit import report as _audit_report  # noqa: F401
from synthbias.studies.equilibrium import report as _equilibrium_report  # noqa: F401
from synthbias.studies.inheritance import report as _inheritance_report  # noqa: F401
from synthbias.studies.mitigation import report as _mitigation_report  # noqa: F401

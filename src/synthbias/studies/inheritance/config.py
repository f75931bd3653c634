"""The inheritance study's config section (``inheritance:``) and its mitigation strategies.

Defined in :mod:`synthbias.studies.sections`, which a config reads without importing this
package (it loads the task code for the study's report pages).
"""

from synthbias.studies.sections import InheritanceMitigationConfig, InheritanceStudyConfig

__all__ = ["InheritanceMitigationConfig", "InheritanceStudyConfig"]

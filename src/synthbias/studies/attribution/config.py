"""The attribution study's config section (``attribution:``).

Defined in :mod:`synthbias.studies.sections`, which a config reads without importing this
package (the study reuses the inheritance study's pieces, which load the task code).
"""

from synthbias.studies.sections import FACTORS, SIGNED_TASKS, AttributionStudyConfig

__all__ = ["FACTORS", "SIGNED_TASKS", "AttributionStudyConfig"]

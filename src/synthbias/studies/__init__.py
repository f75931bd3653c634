"""The studies: each is a config section, a sequence of named cached steps, a summary and report
pages (equilibrium, inheritance, mitigation, attribution), plus the audit, forecast and probe.

Importing this package registers every study in :data:`synthbias.core.registry.STUDIES`, by
name: its config ``section`` at once, and its runner, console printer and report pages as
:class:`~synthbias.core.registry.Lazy` references, imported when a run, a summary or a report
first needs them. So reading a config (its sections, the known kinds) or ``synthbias --help``
loads no study code: the sections live in light modules (each study's ``config``, and
:mod:`synthbias.studies.sections` for the studies whose package loads the task code). A study's
report pages register (:func:`synthbias.report.html.register_section`) when its package is
imported, which its runner does; ``STUDIES.load()`` loads every study, as rebuilding a report of
any kind needs. The generic report sections every kind gets register here. The pronoun probe
(:mod:`synthbias.studies.probe`, which registers the ``probe.gender.*`` metric family) loads with
the studies that use it; the forecast reads whole configs, so it sits beside the entry points'
imports.
"""

from synthbias.core.registry import STUDIES, Lazy
from synthbias.report import generic as _generic_sections  # noqa: F401 - registers the sections

STUDIES.register(
    "attribution",
    Lazy("synthbias.studies.attribution:run_attribution"),
    section="attribution",
    printer=Lazy("synthbias.studies.attribution:print_summary"),
    report=Lazy("synthbias.studies.attribution:report"),
    description="factorial augmentation: which misalignment factor drives inheritance?",
)
STUDIES.register(
    "audit",
    Lazy("synthbias.studies.audit:audit_corpus"),
    experiment=False,
    report=Lazy("synthbias.studies.audit:report"),
    description="every metric family on a dataset, a gate on budgets",
)
STUDIES.register(
    "equilibrium",
    Lazy("synthbias.studies.equilibrium.runner:run_equilibrium"),
    section="study",
    printer=Lazy("synthbias.studies.equilibrium:print_summary"),
    report=Lazy("synthbias.studies.equilibrium:report"),
    description="recursive generation: where does bias settle?",
)
STUDIES.register(
    "equilibrium_loop",
    Lazy("synthbias.studies.equilibrium.loop:run_equilibrium_loop"),
    section="study",
    printer=Lazy("synthbias.studies.equilibrium.loop:print_loop"),
    report=Lazy("synthbias.studies.equilibrium:loop_report"),
    description="real data in the loop: predicted vs observed b* per regime and real share",
)
STUDIES.register(
    "inheritance",
    Lazy("synthbias.studies.inheritance:run_inheritance"),
    section="inheritance",
    printer=Lazy("synthbias.studies.inheritance:print_summary"),
    report=Lazy("synthbias.studies.inheritance:report"),
    description="bias-ratio fine-tuning sweep: does a model inherit the data's bias?",
)
STUDIES.register(
    "mitigation",
    Lazy("synthbias.studies.mitigation.runner:run_mitigation"),
    section="mitigation_study",
    uses=("study", "inheritance"),
    printer=Lazy("synthbias.studies.mitigation:print_summary"),
    report=Lazy("synthbias.studies.mitigation:report"),
    description="every mitigation strategy against the same-seed baseline",
)

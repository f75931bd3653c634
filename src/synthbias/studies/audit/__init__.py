"""Audit any synthetic dataset against metric budgets, with a report.

Registered as the study ``audit`` (run by ``synthbias audit`` / :func:`synthbias.audit`, not from
an experiment config); its report pages are :mod:`synthbias.studies.audit.report`.
"""

from synthbias.core.registry import STUDIES
from synthbias.studies.audit import report
from synthbias.studies.audit.runner import (
    AuditError,
    AuditResult,
    Budget,
    BudgetCheck,
    audit_corpus,
    check_budgets,
    load_texts,
    parse_budgets,
)

__all__ = [
    "AuditError",
    "AuditResult",
    "Budget",
    "BudgetCheck",
    "audit_corpus",
    "check_budgets",
    "load_texts",
    "parse_budgets",
]

STUDIES.register(
    "audit",
    audit_corpus,
    experiment=False,
    report=report,
    description="every metric family on a dataset, a gate on budgets",
)

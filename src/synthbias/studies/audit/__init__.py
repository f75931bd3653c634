"""Audit any synthetic dataset against metric budgets, with a report.

Registered as the study ``audit`` (run by ``synthbias audit`` / :func:`synthbias.audit`, not from
an experiment config) by :mod:`synthbias.studies`, which names this package lazily: importing it
loads the runner (and the measurement code); its report pages are
:mod:`synthbias.studies.audit.report`.
"""

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
    "report",
]

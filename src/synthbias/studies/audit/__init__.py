"""Audit any synthetic dataset against metric budgets, with a report."""

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

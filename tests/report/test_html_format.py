"""Number formatting shared by the HTML report and the console summaries."""

from __future__ import annotations

from synthbias.report.html import fmt_signed


def test_fmt_signed_keeps_the_size_of_tiny_effects() -> None:
    """A real effect of -3.5e-4 must not print as +0.000 / -0.000 beside "detected"."""
    assert fmt_signed(0.069) == "+0.069"
    assert fmt_signed(-0.00035) == "-3.5e-04"
    assert fmt_signed(0.0) == "+0.000"
    assert fmt_signed(0.0005) == "+0.001"  # rounds to a visible value: fixed digits
    assert fmt_signed(-1.5, digits=2) == "-1.50"

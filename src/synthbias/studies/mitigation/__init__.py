"""The mitigation study: every strategy (and none) where it applies, judged by held-out
behaviour."""

"""Statistics every layer shares: divergences between distributions and rank correlations.

Imports nothing else from the package, so measures, tasks, studies and reports can all use it.
"""

"""Statistics every layer shares: resampling, divergences between distributions and rank
correlations.

Every resampling scheme of the package lives here, and measures, tasks and studies call it:
:mod:`.bootstrap` (percentile intervals; one- and two-sample draws as indices or count
weights), :mod:`.sums` (the bootstrap of column sums behind the lexical and fairness metrics),
:mod:`.resampling` (cluster, stratified and paired bootstraps, permutation nulls and tests),
:mod:`.chains` (two-stage bootstrap over replicate chains) and :mod:`.jackknife`
(delete-a-group jackknife). Imports nothing else from the package, so measures, tasks, studies
and reports can all use it.
"""

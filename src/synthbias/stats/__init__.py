"""Statistics every layer shares: resampling, divergences between distributions, rank
correlations, and inference at the level of the replicate.

Every resampling scheme of the package lives here, and measures, tasks and studies call it:
:mod:`.bootstrap` (percentile intervals; one- and two-sample draws as indices or count
weights), :mod:`.sums` (the bootstrap of column sums behind the lexical and fairness metrics),
:mod:`.resampling` (cluster, stratified and paired bootstraps, permutation nulls and tests),
:mod:`.chains` (two-stage bootstrap over replicate chains), :mod:`.two_way` (the same draws
of training seeds × probes for two arms) and :mod:`.jackknife` (delete-a-group jackknife).

A study's headline is a claim about a random process (a corpus drawn, a mix drawn, an adapter
trained), so its interval comes from independent replicates of that process, not from items
resampled inside one run: :mod:`.replicates` (mean over replicates with a t-interval or a
two-stage bootstrap, paired arm differences, per-replicate dose-response slopes and factorial
effects; "not replicated" below three replicates), :mod:`.power` (the 80 %-power minimum
detectable effect and the replicates and items a target effect needs), :mod:`.multiplicity`
(Holm and Benjamini–Hochberg flags over a declared family) and :mod:`.fixed_point` (the
equilibrium map over replicate chains: its slope, and b* with a Fieller interval that is
reported unbounded when the slope's interval reaches 1). ``bench/calibration.py`` checks that
these intervals cover. Imports nothing else from the package, so measures, tasks, studies and
reports can all use it.
"""

"""Mitigations, one module each: token, mask, loss (training time); swap (CDA), contrastive,
debiased (generator fine-tuning), prompting (data and prompt level). See the issue-5 docs in
README for which pipeline each applies to."""

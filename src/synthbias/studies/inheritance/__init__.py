"""The bias-inheritance study: augment -> mix by bias ratio -> LoRA fine-tune -> evaluate tasks."""

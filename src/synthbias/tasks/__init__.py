"""tasks (later issues)."""

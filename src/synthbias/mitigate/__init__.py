"""mitigate (later issues)."""

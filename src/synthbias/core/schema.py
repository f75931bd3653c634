"""The base of every config section (unknown keys are errors) and the config error type."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(ValueError):
    """Invalid configuration; the message names file, line and key."""

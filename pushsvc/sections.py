"""Config tables: the base model of every table, the field types they share, and the error of a bad config.

A leaf (it imports nothing of pushsvc), so `pushsvc.config` and each channel's
own settings model (`pushsvc.channels.<name>`) build on it without importing
each other: the config composes the channels' tables from the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo


class ConfigError(ValueError):
    """The configuration is invalid; each problem names its key path."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = problems


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    # Relative paths are relative to the config file (load_settings passes its
    # directory as the validation context), so a config and its secrets move together.
    value = value.expanduser()
    base_dir = (info.context or {}).get("base_dir")
    return base_dir / value if base_dir is not None and not value.is_absolute() else value


def _empty_is_none(value: Any) -> Any:
    # An empty environment variable clears an optional path set in the file.
    return None if value == "" else value


def names(value: Any) -> Any:
    """A list of names; from the environment it arrives as text: JSON (`["a", "b"]`) or comma separated (`a,b`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path, relative to the config file's directory when not absolute."""
OptionalPath = Annotated[ConfigPath | None, BeforeValidator(_empty_is_none)]
"""An optional path; an empty string means none."""
Names = Annotated[tuple[str, ...], BeforeValidator(names)]
"""A list of names (TOML array, or JSON or comma-separated text from the environment)."""
Port = Annotated[int, Field(ge=0, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Seconds = Annotated[float, Field(ge=0)]


class Section(BaseModel):
    """A table of the config: frozen, unknown keys rejected, field docstrings as descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

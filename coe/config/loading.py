"""Reading coe.yaml: YAML parsing, validation into CoEConfig, and errors that name each bad field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from coe.config.deployment import CoEConfig

class ConfigError(Exception):
    """coe.yaml could not be read or is invalid; the message names each bad field."""


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)


def parse_config(data: object, source: str = "coe.yaml") -> CoEConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return CoEConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def default_config_text() -> str:
    return resources.files("coe").joinpath("default_coe.yaml").read_text()


def load_config(path: Path | None = None) -> CoEConfig:
    """Load `path`, or the default that ships in the package when no path is given."""
    data, source = read_config_data(path)
    return parse_config(data, source)


def read_config_data(path: Path | None = None) -> tuple[object, str]:
    """The YAML mapping as written (unvalidated) and where it came from; unreadable or bad YAML -> ConfigError."""
    if path is None:
        text, source = default_config_text(), "default coe.yaml"
    else:
        try:
            text, source = Path(path).read_text(), str(path)
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    return data, source

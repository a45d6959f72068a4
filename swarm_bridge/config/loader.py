"""Load a YAML config file into a frozen pydantic model, collecting every error with its path."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from swarm_bridge.config.common import PATTERN_WORDS
from swarm_bridge.config.errors import ConfigError, ConfigProblem

__all__ = ["OVERRIDE_HELP", "apply_overrides", "load_config", "validate_config"]

OVERRIDE_HELP = ("override one key of the config file, e.g. --set uplink.port=1884 or --set routes.0.format=json "
                 "(dotted path, list items by index; the value is read as YAML); repeatable, checked like the file")

Model = TypeVar("Model", bound=BaseModel)


def load_config(path: Path | str, model: type[Model], overrides: Sequence[str] = ()) -> Model:
    """Read `path` and validate it as `model`; ROS parameter files (`node: ros__parameters:`) work too.

    `overrides`: `KEY.PATH=VALUE` items (the `--set` option) applied to the file's mapping before validation."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read file: {exc.strerror}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, [ConfigProblem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    data = _unwrap_ros_parameters(data)
    if not overrides:
        return validate_config(data, model, source=path)
    return validate_config(apply_overrides(data, overrides, source=path), model,
                           source=f"{path} (with --set {' '.join(overrides)})")


def apply_overrides(data: Any, overrides: Sequence[str], *, source: Path | str = "<config>") -> Any:
    """A copy of the parsed mapping `data` with each `KEY.PATH=VALUE` set (missing mappings are made; list items
    by index); ConfigError naming every override that cannot be applied. Validation is the caller's."""
    if not isinstance(data, dict):
        return data
    out = copy.deepcopy(data)
    problems = []
    for item in overrides:
        problem = _override(out, item)
        if problem is not None:
            problems.append(ConfigProblem(f"--set {item}", problem))
    if problems:
        raise ConfigError(source, problems)
    return out


def _override(data: dict[str, Any], item: str) -> str | None:
    """Apply one `KEY.PATH=VALUE` to `data` in place; the problem, or None."""
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        return "expected KEY.PATH=VALUE, e.g. uplink.port=1884"
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        return f"value is not valid YAML: {getattr(exc, 'problem', exc)}"
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the top level"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{where} is a list of {len(node)} items: {part!r} is not an index in 0..{len(node) - 1}"
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            return f"{where} is {type(node).__name__}, not a mapping: cannot set {part!r} in it"
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    return None


def validate_config(data: Any, model: type[Model], *, source: Path | str = "<config>") -> Model:
    """Validate an already parsed mapping as `model`, raising ConfigError with every problem."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise ConfigError(source, [ConfigProblem("", "expected a mapping of keys at the top level", got)])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err, model) for err in exc.errors()]) from None


def _unwrap_ros_parameters(data: Any) -> Any:
    """`{node: {ros__parameters: {...}}}` -> `{...}`, so a ROS params file is a config file."""
    if isinstance(data, dict) and len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, dict) and set(inner) == {"ros__parameters"}:
            return inner["ros__parameters"]
    return data


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(err: Any, model: type[BaseModel]) -> ConfigProblem:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(model, loc[:-1])
        near = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else f"; known keys: {', '.join(sorted(known))}"
        return ConfigProblem(_location(loc[:-1]), f"unknown key '{key}'{hint}")
    got = None if err["type"] == "missing" else repr(err.get("input"))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":  # say the form in words, not as a regular expression
        words = PATTERN_WORDS.get(err["ctx"]["pattern"], "of the form the example config shows")
        message = f"must be {words}"
    return ConfigProblem(_location(loc), message, got)


def _known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names allowed at `loc`, walking nested models and lists of models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation like `Model`, `list[Model]` or `Model | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None

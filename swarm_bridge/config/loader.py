"""Load a YAML config file into a frozen pydantic model, collecting every error with its path."""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError, create_model

from swarm_bridge.config.common import PATTERN_WORDS
from swarm_bridge.config.errors import ConfigError, ConfigProblem

__all__ = ["COORDINATOR_OVERRIDE_HELP", "GATEWAY_OVERRIDE_HELP", "OVERRIDE_HELP", "apply_overrides", "load_config",
           "override_help", "validate_config"]


def override_help(*examples: str) -> str:
    """`--set`'s help, with examples taken from the config the command reads."""
    shown = " or ".join(f"--set {example}" for example in examples)
    return (f"override one key of the config file, e.g. {shown} (dotted path, list items by index; the value is "
            "read as YAML); repeatable, checked like the file")


OVERRIDE_HELP = override_help("uplink.port=1884", "routes.0.format=json")  # a robot bridge's
COORDINATOR_OVERRIDE_HELP = override_help("kafka.bootstrap=10.0.0.5:9092", "mode=mqtt")
GATEWAY_OVERRIDE_HELP = override_help("mqtt.port=1884", "gateway_id=hub_b")

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
        raise ConfigError(source, [p for err in exc.errors() for p in _problems(err, model)]) from None


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


def _problems(err: Any, model: type[BaseModel]) -> list[ConfigProblem]:
    """The problems one pydantic error stands for, located by key path (no union tags in it)."""
    raw = tuple(err["loc"])
    loc, _ = _walk(model, raw)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        known = list(getattr(_walk(model, raw[:-1])[1], "model_fields", {}))
        near = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else f"; known keys: {', '.join(sorted(known))}"
        return [ConfigProblem(_location(loc[:-1]), f"unknown key '{key}'{hint}")]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return _unknown_kind(err, model, loc)
    got = None if err["type"] == "missing" else repr(err.get("input"))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":  # say the form in words, not as a regular expression
        words = PATTERN_WORDS.get(err["ctx"]["pattern"], "of the form the example config shows")
        message = f"must be {words}"
    return [ConfigProblem(_location(loc), message, got)]


def _unknown_kind(err: Any, model: type[BaseModel], loc: tuple[int | str, ...]) -> list[ConfigProblem]:
    """A discriminated union (e.g. `uplink`) whose tag (`kind`) is missing or names no member: say the tags
    there are, then check the keys every member shares, as if the tag were right."""
    field = _field_at(model, loc)
    members = _models(field.annotation) if field is not None else []
    key = str(field.discriminator) if field is not None and field.discriminator else "kind"
    tags = [str(get_args(m.model_fields[key].annotation)[0]) for m in members]
    data = err.get("input")
    if err["type"] == "union_tag_not_found" or not isinstance(data, dict):
        out = [ConfigProblem(_location((*loc, key)), f"Field required (one of {', '.join(tags)})")]
    else:
        out = [ConfigProblem(_location((*loc, key)), f"Input should be {' or '.join(repr(t) for t in tags)}",
                             repr(data.get(key)))]
    if not tags or not isinstance(data, dict):
        return out
    shared = set.intersection(*(set(m.model_fields) for m in members)) - {key}
    try:
        members[0].model_validate({k: v for k, v in data.items() if k in shared} | {key: tags[0]})
    except ValidationError as exc:
        for inner in exc.errors():
            out += _problems({**inner, "loc": (*loc, tags[0], *inner["loc"])}, model)
    return out


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], Any]:
    """`loc` without the tag pydantic puts after a discriminated union field, and the model at its end (None
    where it leaves the models)."""
    out: list[int | str] = []
    current: Any = model
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        out.append(part)
        if isinstance(part, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(part)
        members = [] if field is None else _models(field.annotation)
        if field is not None and get_origin(field.annotation) is dict and parts:  # a mapping's key is no field
            out.append(parts.pop(0))
        if field is not None and field.discriminator and len(members) > 1 and parts:
            tag = parts.pop(0)
            key = str(field.discriminator)
            current = next((m for m in members if tag in get_args(m.model_fields[key].annotation)), None)
        else:
            current = members[0] if members else None
    return tuple(out), current


def _field_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    """The pydantic field at key path `loc` (no tags in it), or None."""
    if not loc or isinstance(loc[-1], int):
        return None
    parent = _walk(model, loc[:-1])[1]
    return getattr(parent, "model_fields", {}).get(loc[-1])


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes inside an annotation like `Model`, `list[Model]`, `Model | None` or `A | B`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models(arg)]


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation like `Model`, `list[Model]` or `Model | None`; for a union of
    several (`MqttUplink | KafkaUplink`), one model with the fields of all of them (first one wins)."""
    models = _models(annotation)
    if len(models) < 2:
        return models[0] if models else None
    return _merged(tuple(models))


@functools.cache
def _merged(models: tuple[type[BaseModel], ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for model in models:
        for name, field in model.model_fields.items():
            fields.setdefault(name, (field.annotation, field))
    merged: type[BaseModel] = create_model(" | ".join(m.__name__ for m in models), **fields)
    return merged

"""The configuration's validation errors (pydantic's) in the operator's words: one line per
problem naming the file and the key, a [[targets]] table by its `name`, and for a misspelt
key the nearest real key of the table it was written in."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


def _target_names(data: Mapping[str, Any]) -> dict[int, str]:
    """Each [[targets]] table's index to its `name`, where that names it alone."""
    targets = data.get("targets")
    if not isinstance(targets, list):
        return {}
    names = [t.get("name") if isinstance(t, dict) else None for t in targets]
    return {
        i: name
        for i, name in enumerate(names)
        if isinstance(name, str) and name and names.count(name) == 1
    }


def _location(loc: tuple[int | str, ...], names: Mapping[int, str]) -> str:
    """`target 'proxmox': keep` (or `restore.servers[0].host`) from pydantic's
    ('targets', 0, 'ssh', 'keep'): a target by the name the operator gave it."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            if text == "targets" and part in names:
                text = f"target {names[part]!r}:"
            else:
                text += f"[{part}]"
        elif part in ("ssh", "local", "s3") and text.startswith(("targets", "target ")):
            continue  # the discriminator's branch name, not a key the user wrote
        elif text.endswith(":"):
            text += f" {part}"
        else:
            text += f".{part}" if text else part
    return text.removesuffix(":") or "(top level)"


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The table (model) that the key at `loc` was written in, to suggest its real keys."""
    models: list[type[BaseModel]] = [root]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        branch = [m for m in models if _is_target_of_type(m, part)]
        if branch:  # ('targets', 0, 'ssh', ...): the discriminator picks the target's model
            models = branch
            continue
        field = models[0].model_fields.get(part) if len(models) == 1 else None
        if field is None:
            return None
        models = _models_in(field.annotation)
    return models[0] if len(models) == 1 else None


def _is_target_of_type(model: type[BaseModel], kind: str) -> bool:
    field = model.model_fields.get("type")
    return field is not None and get_args(field.annotation) == (kind,)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _unknown_key(
    root: type[BaseModel], loc: tuple[int | str, ...], names: Mapping[int, str]
) -> str:
    """`unknown key 'keep_lcal' in target 'nas': did you mean 'keep'?`"""
    key = str(loc[-1])
    where = _location(loc[:-1], names)
    text = f"unknown key {key!r}"
    if where.startswith("target"):
        text += f" in {where}"
    elif loc[:-1]:
        text += f" in [{where}]"
    model = _model_at(root, loc)
    known = list(model.model_fields) if model is not None else []
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if nearest:
        return f"{text}: did you mean {nearest[0]!r}?"
    return f"{text} (check its spelling against `k3s-backup config init`)"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return "target type must be one of: ssh, local, s3"
    ctx = error.get("ctx") or {}
    got = error.get("input")
    templates = {
        "greater_than_equal": "must be at least {ge}, got {got!r}",
        "less_than_equal": "must be at most {le}, got {got!r}",
        "greater_than": "must be greater than {gt}, got {got!r}",
        "int_type": "must be a whole number, got {got!r}",
        "string_type": "must be a string, got {got!r}",
        "float_type": "must be a number, got {got!r}",
        "bool_type": "must be true or false, got {got!r}",
        "path_type": "must be a path string, got {got!r}",
        "list_type": "must be a list ([[targets]] tables), got {got!r}",
        "model_type": "must be a table, got {got!r}",
        "string_pattern_mismatch": (
            "may only contain letters, digits, '.', '_' and '-', got {got!r}"
        ),
        "string_too_short": "must not be empty",
        "missing": "is required",
    }
    if kind in templates:
        return templates[kind].format(got=got, **ctx)
    return str(error["msg"]).removeprefix("Value error, ")


def _line(root: type[BaseModel], error: Mapping[str, Any], names: Mapping[int, str]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc:
        return _unknown_key(root, loc, names)
    return f"{_location(loc, names)}: {_message(error)}"


def format_validation_error(
    path: Path, error: ValidationError, data: Mapping[str, Any], root: type[BaseModel]
) -> str:
    """One line per problem, each naming the file and the key (a target by its name)."""
    names = _target_names(data)
    lines = [f"{path}: {_line(root, e, names)}" for e in error.errors()]
    return "invalid configuration\n" + "\n".join(f"  {line}" for line in lines)

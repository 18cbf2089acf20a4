"""Validate a command's `--json` output against the schema shipped in k3s_backup/schemas/."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator


def validate(output: str, command: str) -> Any:
    schema = json.loads((files("k3s_backup") / "schemas" / f"{command}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    document = json.loads(output)  # all of stdout: nothing else is printed there
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    validator.validate(document)
    return document

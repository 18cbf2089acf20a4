"""Configuration: TOML, validated on load, every problem named by key and file (exit 2)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from k3s_backup.errors import ConfigError
from k3s_backup.policy.naming import cluster_name_problem

DEFAULT_CONFIG_PATH = Path("/etc/k3s-backup/config.toml")
CONFIG_ENV_VAR = "K3S_BACKUP_CONFIG"

TARGET_NAME_PATTERN = r"^[A-Za-z0-9._-]+$"


def _absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"must be an absolute path, got {str(value)!r}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class K3sSettings(_Strict):
    bin: StrictStr = "k3s"
    data_dir: Path = Path("/var/lib/rancher/k3s")

    _abs = field_validator("data_dir", mode="after")(_absolute)


class _TargetConfigBase(_Strict):
    name: StrictStr = Field(pattern=TARGET_NAME_PATTERN)
    keep: StrictInt = Field(default=7, ge=1)
    path: Path

    _abs_path = field_validator("path", mode="after")(_absolute)


class SshTargetConfig(_TargetConfigBase):
    type: Literal["ssh"]
    host: StrictStr = Field(min_length=1)
    user: StrictStr = "root"
    port: StrictInt = Field(default=22, ge=1, le=65535)
    path: Path = Path("/var/backups/k3s-etcd")
    identity_file: Path = Path("/root/.ssh/id_ed25519")
    known_hosts: Path = Path("/root/.ssh/known_hosts")
    connect_timeout: StrictFloat | StrictInt = Field(default=15.0, gt=0)

    _abs_files = field_validator("identity_file", "known_hosts", mode="after")(_absolute)


class LocalTargetConfig(_TargetConfigBase):
    type: Literal["local"]


TargetConfig = Annotated[SshTargetConfig | LocalTargetConfig, Field(discriminator="type")]


class Config(_Strict):
    cluster_name: StrictStr = "k3s-homelab"
    snapshot_dir: Path = Path("/var/lib/rancher/k3s/server/db/snapshots")
    keep_local: StrictInt = Field(default=3, ge=1)
    log_file: Path = Path("/var/log/k3s-backup.log")
    state_dir: Path = Path("/var/lib/k3s-backup")
    k3s: K3sSettings = K3sSettings()
    targets: list[TargetConfig] = []

    _abs = field_validator("snapshot_dir", "log_file", "state_dir", mode="after")(_absolute)

    @field_validator("cluster_name", mode="after")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        problem = cluster_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _unique_target_names(self) -> Config:
        names = [target.name for target in self.targets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique, repeated: {', '.join(duplicates)}")
        return self

    def target(self, name: str) -> SshTargetConfig | LocalTargetConfig:
        for target in self.targets:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.targets) or "none"
        raise ConfigError(f"no target named {name!r} (configured: {known})")


def _location(loc: tuple[int | str, ...]) -> str:
    """`targets[0].keep` from pydantic's ('targets', 0, 'ssh', 'keep')."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("ssh", "local") and text.startswith("targets"):
            continue  # the discriminator's branch name, not a key the user wrote
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check its spelling against `k3s-backup config init`)"
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return "target type must be one of: ssh, local"
    ctx = error.get("ctx") or {}
    got = error.get("input")
    templates = {
        "greater_than_equal": "must be at least {ge}, got {got!r}",
        "less_than_equal": "must be at most {le}, got {got!r}",
        "greater_than": "must be greater than {gt}, got {got!r}",
        "int_type": "must be a whole number, got {got!r}",
        "string_type": "must be a string, got {got!r}",
        "float_type": "must be a number, got {got!r}",
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


def format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {_location(e['loc'])}: {_message(e)}" for e in error.errors()]
    return "invalid configuration\n" + "\n".join(f"  {line}" for line in lines)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path:
    if explicit is not None:
        return explicit
    from_env = environ.get(CONFIG_ENV_VAR)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration at {path}: create one with `k3s-backup config init --output {path}`"
            " or point --config / K3S_BACKUP_CONFIG at yours"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)

"""Configuration: TOML, validated on load, every problem named by key and file (exit 2)."""

from __future__ import annotations

import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from k3s_backup.config_errors import format_validation_error
from k3s_backup.errors import ConfigError
from k3s_backup.policy.naming import cluster_name_problem
from k3s_backup.policy.schedule import DEFAULT_SCHEDULE
from k3s_backup.policy.schedule import parse as parse_schedule

DEFAULT_CONFIG_PATH = Path("/etc/k3s-backup/config.toml")
CONFIG_ENV_VAR = "K3S_BACKUP_CONFIG"
# The sample target's host in `config init`'s template (a reserved name, RFC 2606): not a
# configured host, so `setup` asks for the real one (or takes --host) instead of using it.
PLACEHOLDER_HOST = "backup-host.example"

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
    config_dir: Path = Path("/etc/rancher/k3s")  # config.yaml and config.yaml.d/

    _abs = field_validator("data_dir", "config_dir", mode="after")(_absolute)


K3S_ETCD_TLS = Path("/var/lib/rancher/k3s/server/tls/etcd")


class EtcdSettings(_Strict):
    """The `etcd` source: an etcd v3 endpoint, with TLS client certificates (K3s's by default)."""

    endpoints: list[StrictStr] = Field(default=["https://127.0.0.1:2379"], min_length=1)
    cacert: Path = K3S_ETCD_TLS / "server-ca.crt"
    cert: Path = K3S_ETCD_TLS / "client.crt"
    key: Path = K3S_ETCD_TLS / "client.key"
    connect_timeout: StrictFloat | StrictInt = Field(default=10.0, gt=0)

    _abs = field_validator("cacert", "cert", "key", mode="after")(_absolute)

    @field_validator("endpoints", mode="after")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            if not endpoint.startswith(("https://", "http://")):
                raise ValueError(f"must be http:// or https:// URLs, got {endpoint!r}")
        return value


class _TargetConfigBase(_Strict):
    name: StrictStr = Field(pattern=TARGET_NAME_PATTERN)
    keep: StrictInt = Field(default=7, ge=1)  # the newest N copies (per node)
    keep_daily: StrictInt = Field(default=0, ge=0)  # GFS, with restic `forget` semantics
    keep_weekly: StrictInt = Field(default=0, ge=0)
    keep_monthly: StrictInt = Field(default=0, ge=0)
    compression: Literal["none", "zstd", "zip"] = "zstd"
    zstd_level: StrictInt = Field(default=3, ge=1, le=22)
    age_recipients: list[StrictStr] = []  # public keys: copies are encrypted to them
    # A run tries an unreachable target again (a link blip at 02:00 is not a failed night):
    retries: StrictInt = Field(default=2, ge=0, le=10)
    retry_delay: StrictFloat | StrictInt = Field(default=30.0, ge=0, le=3600)  # seconds


class _PathTargetConfigBase(_TargetConfigBase):
    path: Path

    _abs_path = field_validator("path", mode="after")(_absolute)


class SshTargetConfig(_PathTargetConfigBase):
    type: Literal["ssh"]
    host: StrictStr = Field(min_length=1)
    user: StrictStr = "root"
    port: StrictInt = Field(default=22, ge=1, le=65535)
    path: Path = Path("/var/backups/k3s-etcd")
    identity_file: Path = Path("/root/.ssh/id_ed25519")
    known_hosts: Path = Path("/root/.ssh/known_hosts")
    connect_timeout: StrictFloat | StrictInt = Field(default=15.0, gt=0)
    # How the host is used (README "The backup host"): "append-only" and "prune" speak to
    # `k3s-backup serve`, the key's forced command there; "sftp" is the guide's plain SFTP,
    # kept for set-ups made before it (doctor warns: the node's key is a shell there).
    mode: Literal["sftp", "append-only", "prune"] = "sftp"

    _abs_files = field_validator("identity_file", "known_hosts", mode="after")(_absolute)


class LocalTargetConfig(_PathTargetConfigBase):
    type: Literal["local"]


class S3TargetConfig(_TargetConfigBase):
    """S3-compatible object storage. Credentials come from the environment (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY) or `credentials_file` (AWS's format), never from the command line."""

    type: Literal["s3"]
    bucket: StrictStr = Field(min_length=3)
    prefix: StrictStr = Field(default="", pattern=r"^[A-Za-z0-9._/-]*$")
    endpoint_url: StrictStr | None = None  # e.g. http://minio:9000; None: AWS
    region: StrictStr = "us-east-1"
    credentials_file: Path | None = None
    profile: StrictStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # S3 Object Lock (the bucket must be created with it): every object a run puts is locked
    # until the scheduled run whose rotation would remove it (policy.lock_period), or for
    # `object_lock_days` after the copy was made when set.
    object_lock: Literal["off", "governance", "compliance"] = "off"
    object_lock_days: StrictInt | None = Field(default=None, ge=1, le=36500)

    _abs_credentials = field_validator("credentials_file", mode="after")(
        lambda value: value if value is None else _absolute(value)
    )

    @model_validator(mode="after")
    def _lock_days_need_lock(self) -> S3TargetConfig:
        if self.object_lock_days is not None and self.object_lock == "off":
            raise ValueError('object_lock_days needs object_lock = "governance" or "compliance"')
        return self


TargetConfig = Annotated[
    SshTargetConfig | LocalTargetConfig | S3TargetConfig, Field(discriminator="type")
]


class NodeConfig(_Strict):
    """Another K3s node a restore stops and restarts over SSH (same SSH keys as a target)."""

    host: StrictStr = Field(min_length=1)
    user: StrictStr = "root"
    port: StrictInt = Field(default=22, ge=1, le=65535)
    identity_file: Path = Path("/root/.ssh/id_ed25519")
    known_hosts: Path = Path("/root/.ssh/known_hosts")
    connect_timeout: StrictFloat | StrictInt = Field(default=15.0, gt=0)
    data_dir: Path = Path("/var/lib/rancher/k3s")  # K3s's --data-dir on that node

    _abs_files = field_validator("identity_file", "known_hosts", "data_dir", mode="after")(
        _absolute
    )


class RestoreSettings(_Strict):
    ready_timeout: StrictFloat | StrictInt = Field(default=300.0, gt=0)  # seconds
    servers: list[NodeConfig] = []  # the other servers of the cluster
    agents: list[NodeConfig] = []


SECRET_URL_KEYS = ("ping_url", "webhook_url")  # [notify]: their path or query is the secret


def redact_url(url: str) -> str:
    """`scheme://host[:port]/…`: what may be shown of a ping or webhook URL (its path holds a
    check's UUID or a chat token; user:password@ is dropped too)."""
    if "://" not in url:  # `hc-ping.com/<uuid>`: no scheme, still a secret path
        host, slash, rest = url.partition("/")
        return host.rpartition("@")[2] + ("/…" if slash and rest else slash)
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(an unparsable URL)"
    hidden = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{hidden}"


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a configuration's data (as in the TOML file) with the secret URLs redacted."""
    notify = data.get("notify")
    if not isinstance(notify, dict):
        return data
    shown = {
        k: redact_url(v) if k in SECRET_URL_KEYS and isinstance(v, str) else v
        for k, v in notify.items()
    }
    return {**data, "notify": shown}


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ValueError(f"must be an http:// or https:// URL, got {redact_url(value)!r}")
    return value


class NotifySettings(_Strict):
    """Dead man's switch pings (healthchecks.io convention) and a JSON webhook of the report."""

    ping_url: StrictStr | None = None  # /start before a run, the URL on success, /fail on failure
    webhook_url: StrictStr | None = None  # JSON POST of the run report on failure
    webhook_on_success: StrictBool = False
    timeout: StrictFloat | StrictInt = Field(default=10.0, gt=0)  # seconds, per attempt
    retries: StrictInt = Field(default=2, ge=0, le=10)  # after the first attempt

    _urls = field_validator("ping_url", "webhook_url", mode="after")(_http_url)


class Config(_Strict):
    cluster_name: StrictStr = "k3s-homelab"
    source: Literal["auto", "k3s", "etcd", "sqlite"] = "auto"
    node_name: StrictStr = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    snapshot_dir: Path = Path("/var/lib/rancher/k3s/server/db/snapshots")
    keep_local: StrictInt = Field(default=3, ge=1)
    log_file: Path = Path("/var/log/k3s-backup.log")
    state_dir: Path = Path("/var/lib/k3s-backup")
    # The cluster's recovery key (recovery_key.py): authenticates every copy; kept off the node.
    recovery_key_file: Path = Path("/etc/k3s-backup/recovery.key")
    schedule: StrictStr = DEFAULT_SCHEDULE  # cron syntax; installed by `k3s-backup setup`
    scheduler: Literal["cron", "systemd"] = "cron"
    # cron syntax; when set, setup also schedules `k3s-backup drill` (e.g. weekly "0 4 * * 0")
    drill_schedule: StrictStr | None = None
    k3s: K3sSettings = K3sSettings()
    etcd: EtcdSettings = EtcdSettings()
    targets: list[TargetConfig] = []
    restore: RestoreSettings = RestoreSettings()
    metrics_textfile: Path | None = None  # for node_exporter's textfile collector
    notify: NotifySettings = NotifySettings()

    _abs = field_validator(
        "snapshot_dir", "log_file", "state_dir", "recovery_key_file", mode="after"
    )(_absolute)
    _abs_metrics = field_validator("metrics_textfile", mode="after")(
        lambda value: value if value is None else _absolute(value)
    )

    @field_validator("cluster_name", mode="after")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        problem = cluster_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("schedule", "drill_schedule", mode="after")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)  # ScheduleError is a ValueError: reported with key and file
        return value

    @model_validator(mode="after")
    def _unique_target_names(self) -> Config:
        names = [target.name for target in self.targets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique, repeated: {', '.join(duplicates)}")
        return self

    def target(self, name: str) -> SshTargetConfig | LocalTargetConfig | S3TargetConfig:
        for target in self.targets:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.targets) or "none"
        raise ConfigError(f"no target named {name!r} (configured: {known})")


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, data, Config)) from None


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
    refuse_writable_by_others(path)
    return parse_config(data, path)


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o600  # gone or unreadable: the read itself reports it


def refuse_writable_by_others(path: Path) -> None:
    """The configuration names the programs run as root (`k3s.bin`) and the paths written:
    like ssh with a group- or world-writable ~/.ssh/config, refuse it."""
    mode = _mode(path)
    if mode & 0o022:
        raise ConfigError(
            f"{path} is writable by others (mode {mode:04o}): whoever can change it chooses"
            f" what k3s-backup runs as root; `chmod 600 {path}`"
        )


def config_file_warnings(path: Path, config: Config) -> list[str]:
    """The configuration holds secrets only in [notify]'s URLs: warn when others can read it."""
    mode = _mode(path)
    secrets = [key for key in SECRET_URL_KEYS if getattr(config.notify, key)]
    if mode & 0o044 and secrets:
        return [
            f"{path} is readable by others (mode {mode:04o}) and holds the secret"
            f" {' and '.join(secrets)}: `chmod 600 {path}`"
        ]
    return []

"""`k3s-backup config show|init`: the effective configuration, and a commented template."""

from __future__ import annotations

import os
from pathlib import Path

import click

from k3s_backup.cli_options import Context, pass_context
from k3s_backup.config import PLACEHOLDER_HOST, SECRET_URL_KEYS, Config, redacted
from k3s_backup.config_file import shown
from k3s_backup.environment import Environment
from k3s_backup.errors import ConfigError, ExitCode

TEMPLATE = f"""\
# k3s-backup configuration. Every key is optional except [[targets]]; the values shown are
# the defaults. Snapshots hold every Secret of the cluster in clear: keep this file 0600.

# Prefix of our snapshot names (<cluster_name>-<YYYYmmdd-HHMMSS>-<node>-<unix>). Letters,
# digits, '.', '_' and '-'; must not start with "etcd-snapshot" (K3s's own prefix) and should
# not be a prefix of another cluster's name on the same backup host.
cluster_name = "k3s-homelab"

# Where snapshots come from: auto | k3s | etcd | sqlite. auto = sqlite when K3s runs on its
# SQLite datastore (single node), else `k3s etcd-snapshot save`.
source = "auto"
node_name = ""            # this node's name in snapshot names (etcd and sqlite sources) and
                          # the node `restore` waits for; default: K3s's node-name, else host

# Where snapshots are kept on this node (K3s's --etcd-snapshot-dir for the k3s source).
snapshot_dir = "/var/lib/rancher/k3s/server/db/snapshots"

# How many of our snapshots to keep on this node (K3s's own etcd-snapshot-* are never touched).
keep_local = 3

log_file = "/var/log/k3s-backup.log"
state_dir = "/var/lib/k3s-backup"
# The cluster's recovery key: authenticates every copy, decrypts restore bundles. Keep a copy
# OFF this node (`k3s-backup recovery-key show`).
recovery_key_file = "/etc/k3s-backup/recovery.key"

# Installed by `k3s-backup setup`: cron syntax, and cron or a systemd timer.
schedule = "0 2 * * *"
scheduler = "cron"
# Also rehearse a restore (`k3s-backup drill`) on this schedule; unset: never scheduled.
# drill_schedule = "0 4 * * 0"

# Prometheus metrics after every run and drill, written atomically for node_exporter's textfile
# collector (--collector.textfile.directory). Unset: no file (`k3s-backup metrics` still prints).
# metrics_textfile = "/var/lib/node_exporter/textfile_collector/k3s_backup.prom"

[k3s]
bin = "k3s"
data_dir = "/var/lib/rancher/k3s"   # as K3s's --data-dir
config_dir = "/etc/rancher/k3s"     # config.yaml and config.yaml.d/ (saved in the restore bundle)

# Only for source = "etcd" (any etcd v3: kubeadm, RKE2, plain etcd). kubeadm's files are
# /etc/kubernetes/pki/etcd/ca.crt, healthcheck-client.crt and healthcheck-client.key.
# [etcd]
# endpoints = ["https://127.0.0.1:2379"]
# cacert = "/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt"
# cert = "/var/lib/rancher/k3s/server/tls/etcd/client.crt"
# key = "/var/lib/rancher/k3s/server/tls/etcd/client.key"

# One [[targets]] table per place copies go. Each gets every snapshot, verified by SHA-256.
[[targets]]
name = "proxmox"
type = "ssh"              # ssh | local | s3
host = "{PLACEHOLDER_HOST}"   # `k3s-backup setup` asks for the backup host (or --host)
mode = "append-only"      # the key runs only `k3s-backup serve` there, which deletes nothing
                          # (README: The backup host); "sftp": the guide's root SFTP
user = "k3s-backup"       # the account `k3s-backup host-setup` makes there ("root" for sftp)
port = 22
path = "/var/backups/k3s-etcd"
identity_file = "/root/.ssh/id_ed25519"
known_hosts = "/root/.ssh/known_hosts"   # the host key must be there: it is never auto-accepted
keep = 7                  # the newest 7 copies; add keep_daily/keep_weekly/keep_monthly for GFS
compression = "zstd"      # none | zstd | zip
# age_recipients = ["age1..."]   # encrypt to these public keys; keep the private key offline
retries = 2               # further attempts when the link fails (refused, cut, timed out)
retry_delay = 30          # seconds between them

# A mounted NAS or USB disk:
# [[targets]]
# name = "nas"
# type = "local"
# path = "/mnt/nas/k3s-etcd"
# keep = 14

# S3-compatible object storage (credentials from the environment or credentials_file):
# [[targets]]
# name = "minio"
# type = "s3"
# bucket = "k3s-backups"
# prefix = "homelab"
# endpoint_url = "http://minio.lan:9000"
# credentials_file = "/etc/k3s-backup/s3-credentials"
# keep = 30
# keep_monthly = 12

# Know when backups stop. A notifier that fails only warns in the log: never fails the backup.
[notify]
# ping_url = "https://hc-ping.com/<uuid>"   # healthchecks.io style: <url>/start before a run,
#                                           # <url> on success, <url>/fail with the log tail
# webhook_url = "https://chat.example/hooks/..."  # JSON POST of the run report on failure
webhook_on_success = false  # also POST the report when the run succeeded
timeout = 10                # seconds per attempt
retries = 2                 # further attempts after a failed one
"""


def show(config: Config, env: Environment) -> ExitCode:
    data = config.model_dump(mode="json")  # None: an unset key, shown as a comment
    data = redacted(data)  # the ping/webhook URL's path is a secret: shown as scheme://host/…
    secret = frozenset(key for key in SECRET_URL_KEYS if getattr(config.notify, key))
    env.stdout.write(shown(data, secret))
    return ExitCode.OK


def init(output: Path | None, force: bool, env: Environment) -> ExitCode:
    if output is None:
        env.stdout.write(TEMPLATE)
        return ExitCode.OK
    if output.exists() and not force:
        raise ConfigError(f"{output} already exists; not overwriting it (use --force to replace)")
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(TEMPLATE)
    os.chmod(output, 0o600)
    env.stdout.write(f"Wrote {output} (0600); `k3s-backup setup` fills in the backup host.\n")
    return ExitCode.OK


@click.group("config")
def command() -> None:
    """Show the effective configuration or write a template."""


@command.command("show")
@pass_context
def _show_command(ctx: Context) -> int:
    """Print the effective configuration (file values plus defaults) as TOML."""
    return show(ctx.config(), ctx.env)


@command.command("init")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the template here (mode 0600) instead of printing it.",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
@pass_context
def _init_command(ctx: Context, output: Path | None, force: bool) -> int:
    """Write a commented configuration template."""
    return init(output, force, ctx.env)

"""Each configured target: an SSH target's keys, restriction, connection, directory and free
space (or, in a service mode, that the key runs only `k3s-backup serve`); a local directory
and its free space; S3's Object Lock; any other backend must at least list our copies."""

from __future__ import annotations

import shutil

from k3s_backup.catalogue.inventory import target_copies
from k3s_backup.checks import FAIL, OK, WARN
from k3s_backup.config import (
    Config,
    LocalTargetConfig,
    S3TargetConfig,
    SshTargetConfig,
    TargetConfig,
)
from k3s_backup.diagnosis.check import Check, Checks
from k3s_backup.diagnosis.keys import host_key, key
from k3s_backup.errors import BackupError
from k3s_backup.report import human_size, plural
from k3s_backup.sources.estimate import snapshot_size_estimate
from k3s_backup.ssh import nodekeys
from k3s_backup.ssh.errors import KeyRefusedError
from k3s_backup.targets.base import Probes, probes_of
from k3s_backup.targets.factory import open_target, s3_backend
from k3s_backup.targets.service import ServiceTarget
from k3s_backup.targets.ssh import missing_directory_fix


def target_checks(config: Config, target: TargetConfig) -> Checks:
    """The checks that fit the target's kind."""
    if isinstance(target, SshTargetConfig):
        yield from ssh(config, target)
    elif isinstance(target, LocalTargetConfig):
        yield local_target(config, target)
    else:
        yield any_target(config, target)
        if isinstance(target, S3TargetConfig) and target.object_lock != "off":
            yield s3_object_lock(config, target)


def ssh(config: Config, target: SshTargetConfig) -> Checks:
    prefix = f"{target.name}: "
    key_check = key(target)
    yield key_check
    host_key_check = host_key(target)
    yield host_key_check
    if key_check.status == FAIL or host_key_check.status == FAIL:
        return
    if target.mode != "sftp":
        yield from service(config, target, prefix)
        return
    yield Check(
        prefix + "restriction",
        WARN,
        'mode = "sftp": the node\'s key is a shell on the backup host (an intruder on this'
        " node can delete or overwrite every copy there)",
        'the two host commands `k3s-backup setup` prints, then mode = "append-only"'
        " (README: The backup host)",
    )
    yield from remote(config, target, prefix)


def service(config: Config, target: SshTargetConfig, prefix: str) -> Checks:
    """The key must start `k3s-backup serve` and nothing else."""
    fix = "on the backup host, run the host-setup line `k3s-backup setup` prints"
    with open_target(target, config.cluster_name) as opened:
        service = probes_of(opened)
        assert isinstance(service, ServiceTarget)  # what open_target makes for the mode
        try:
            shell = service.opens_shell()
        except BackupError as exc:
            yield Check(prefix + "connection", FAIL, str(exc), "check network and sshd")
            return
        if shell:
            saw = f"{target.user}@{target.host} runs any command for the node's key"
            yield Check(prefix + "restriction", FAIL, saw + ": it still opens a shell", fix)
        else:
            saw = "the node's key runs only `k3s-backup serve` there"
            yield Check(prefix + "restriction", OK, saw)
        try:
            count = len(target_copies(opened, config.cluster_name))
            service.check_writable()
        except BackupError as exc:
            yield Check(prefix + "service", FAIL, str(exc), fix)
            return
        yield Check(prefix + "service", OK, f"{target.mode}; lists {count} copies of ours")
        yield room(config, prefix, str(target.path), target.keep, service.free_space())


def remote(config: Config, target: SshTargetConfig, prefix: str) -> Checks:
    with open_target(target, config.cluster_name) as opened:
        probes = probes_of(opened)
        try:
            probes.connect()
        except KeyRefusedError:
            public = nodekeys.public_line(target.identity_file)
            yield Check(
                prefix + "connection",
                FAIL,
                f"{target.user}@{target.host} refused the key {target.identity_file}",
                f"add this line to ~{target.user}/.ssh/authorized_keys on {target.host}: {public}",
            )
            return
        except BackupError as exc:
            yield Check(prefix + "connection", FAIL, str(exc), "check network and sshd")
            return
        yield Check(
            prefix + "connection",
            OK,
            f"{target.user}@{target.host}:{target.port} (key auth, no prompts,"
            f" {target.connect_timeout}s timeout)",
        )
        directory = remote_dir(target, prefix, probes)
        yield directory
        if directory.status == OK:
            yield room(config, prefix, str(target.path), target.keep, probes.free_space())


def remote_dir(target: SshTargetConfig, prefix: str, probes: Probes) -> Check:
    name = prefix + "directory"
    try:
        if not probes.directory_exists():
            saw = f"{target.path} does not exist on {target.host}"
            fix = missing_directory_fix(target.name, target.user, target.host, str(target.path))
            return Check(name, FAIL, saw, fix)
        probes.check_writable()
    except BackupError as exc:
        return Check(
            name,
            FAIL,
            f"{target.path} is not writable: {exc}",
            f"on {target.host}: chown {target.user} {target.path} && chmod 700 {target.path}",
        )
    return Check(name, OK, f"{target.path} exists and is writable")


def room(config: Config, prefix: str, path: str, keep: int, free: int | None) -> Check:
    name = prefix + "free space"
    if free is None:
        return Check(name, WARN, f"unknown for {path} (no statvfs@openssh.com)")
    size = snapshot_size_estimate(config)
    needed = size * (keep + 1)
    if free < needed:
        return Check(
            name,
            FAIL,
            f"{human_size(free)} free in {path}; keep = {keep} needs ~{human_size(needed)}",
            "free space there, or lower keep for this target",
        )
    return Check(name, OK, f"{human_size(free)} free in {path} (needs ~{human_size(needed)})")


def local_target(config: Config, target: LocalTargetConfig) -> Check:
    name = f"{target.name}: directory"
    path = target.path
    if not path.is_dir():
        fix = f"mount it, or mkdir -m 700 {path}"
        return Check(name, FAIL, f"{path} does not exist (not mounted?)", fix)
    free = shutil.disk_usage(path).free
    check = room(config, f"{target.name}: ", str(path), target.keep, free)
    return check if check.status != OK else Check(name, OK, f"{path}: {check.saw}")


def any_target(config: Config, target: TargetConfig) -> Check:
    """A backend without specific checks: it must at least list its copies."""
    name = f"{target.name}: reachable"
    try:
        with open_target(target, config.cluster_name) as opened:
            count = len(target_copies(opened, config.cluster_name))
    except BackupError as exc:
        return Check(name, FAIL, str(exc), f"check the [[targets]] entry {target.name!r}")
    return Check(name, OK, f"lists {plural(count, 'copy')} of ours")


def s3_object_lock(config: Config, target: S3TargetConfig) -> Check:
    """object_lock set: the bucket must have been made with Object Lock, or every put's
    PutObjectRetention fails (and nothing would protect the copies)."""
    name = f"{target.name}: object lock"
    try:
        enabled = s3_backend(target, config.cluster_name).object_lock_enabled()
    except BackupError as exc:
        return Check(name, FAIL, str(exc), f"check the [[targets]] entry {target.name!r}")
    if enabled:
        return Check(name, OK, f"bucket {target.bucket} has Object Lock enabled")
    return Check(
        name,
        FAIL,
        f"object_lock = {target.object_lock!r} but bucket {target.bucket} has no Object Lock",
        "Object Lock needs a versioned bucket created with it: `aws s3api create-bucket"
        f" --bucket NEW --object-lock-enabled-for-bucket`, or on {target.bucket}:"
        f" `aws s3api put-bucket-versioning --bucket {target.bucket} --versioning-configuration"
        f" Status=Enabled` then `aws s3api put-object-lock-configuration --bucket"
        f" {target.bucket} --object-lock-configuration ObjectLockEnabled=Enabled`",
    )

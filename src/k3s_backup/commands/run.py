"""`k3s-backup run`: snapshot, ship to every target (catching up), verify, rotate, report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from k3s_backup import bundle
from k3s_backup.config import Config, TargetConfig
from k3s_backup.environment import Environment
from k3s_backup.errors import BackupError, ExitCode, SnapshotError, TargetUnreachable
from k3s_backup.formats.snapshot import check_snapshot
from k3s_backup.inventory import LocalManifests, local_bundle_path, local_copies, target_copies
from k3s_backup.lock import exclusive_run
from k3s_backup.manifest import Manifest, for_snapshot
from k3s_backup.monitoring.hooks import Hooks
from k3s_backup.monitoring.metrics import publish_metrics
from k3s_backup.policy import naming
from k3s_backup.policy.retention import GfsRules
from k3s_backup.progress import TransferBar
from k3s_backup.report import Reporter, human_size
from k3s_backup.rotation import plan, remove_from_target, remove_local, rules_of
from k3s_backup.sources.base import LocalSnapshot, Source
from k3s_backup.sources.factory import open_source
from k3s_backup.state import record_run
from k3s_backup.storage_form import StoredForm, encrypt_bytes, stored_stream
from k3s_backup.streams import MeteredReader, sha256_stream
from k3s_backup.targets.base import Target, final_of_temp, put_bytes
from k3s_backup.targets.factory import open_target


@dataclass
class TargetResult:
    ok: bool
    shipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    copies: int = 0
    bytes: int = 0
    newest: str | None = None  # the newest verified copy there, after this run
    newest_unix: int | None = None
    error: str | None = None
    attempts: int = 1  # more than 1: the target was unreachable, then tried again


PHASES = ("snapshot", "upload", "verify", "rotate")


class Phases:
    """Seconds spent in each phase of a run, summed over targets. `upload` includes encoding
    (it happens while uploading); `verify` is the time a target's `put` takes after the
    snapshot was read to its end (the last bytes sent, re-hash where stored, rename).
    Connecting, listing and the small manifest and bundle uploads count only in the total."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(phase, time.monotonic() - started)

    def rounded(self) -> dict[str, float]:
        return {phase: round(seconds, 3) for phase, seconds in self.seconds.items()}


SOURCE_LABELS = {
    "k3s": "with `k3s etcd-snapshot save`",
    "etcd": "from the etcd Maintenance API",
    "sqlite": "from K3s's SQLite datastore with SQLite's backup API",
}


def make_source(config: Config, env: Environment) -> Source:
    return open_source(config, env.environ)


def _manifest_of(snapshot: LocalSnapshot, source_kind: str) -> Manifest:
    if snapshot.name.suffix == ".zip":  # the manifest describes the stored file, not its content
        digest = _file_sha256(snapshot.path)
        size = snapshot.path.stat().st_size
    else:
        digest, size = snapshot.check.sha256, snapshot.check.size
    return for_snapshot(snapshot.name, source_kind, size, digest)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_stream(stream)


def stored_form(target_config: TargetConfig) -> StoredForm:
    return StoredForm(
        compression=target_config.compression,
        zstd_level=target_config.zstd_level,
        recipients=tuple(target_config.age_recipients),
    )


def stored_name(name: naming.SnapshotName, form: StoredForm) -> str:
    """The name of a local snapshot's copy in a target's stored form (`.zst`, `.age`, ...)."""
    return name.filename + form.suffix(name.suffix)


class Run:
    def __init__(self, config: Config, env: Environment, reporter: Reporter) -> None:
        self.config = config
        self.env = env
        self.report = reporter
        self.source = make_source(config, env)
        self.manifests = LocalManifests(config.state_dir, config.snapshot_dir, self.source.kind)
        self.phases = Phases()

    def _ship_one(
        self, target: Target, name: naming.SnapshotName, local: Manifest, form: StoredForm
    ) -> str:
        """Encode, upload and verify one copy and its manifest; the stored name."""
        stored = stored_name(name, form)
        as_is = stored == name.filename  # the local file itself: its digest is known
        started = time.monotonic()
        with (
            (self.config.snapshot_dir / name.filename).open("rb") as plain,
            TransferBar(self.env, f"{stored} to {target.name}", local.size) as bar,
        ):
            reader = MeteredReader(plain, bar.advance)  # progress in snapshot bytes
            with stored_stream(reader, local.size, form, name.suffix, name.filename) as stream:
                verified = target.put(stored, stream, local.sha256 if as_is else None)
            done = time.monotonic()
        manifest = replace(
            local,
            name=stored,
            size=verified.size,
            sha256=verified.sha256,
            compression=form.effective_compression(name.suffix),
            encryption=form.encryption,
            snapshot=name.filename,
            plain_size=local.size,
            plain_sha256=local.sha256,
        )
        put_bytes(target, naming.manifest_name(manifest.name), manifest.to_json())
        drained = reader.drained_at or done
        self.phases.add("upload", drained - started)
        self.phases.add("verify", done - drained)
        return manifest.name

    def take_snapshot(self) -> LocalSnapshot:
        prefix = naming.snapshot_prefix(self.config.cluster_name, self.env.now())
        self.report.info(f"Creating snapshot {prefix} ({SOURCE_LABELS[self.source.kind]})")
        snapshot = self.source.take(prefix)
        self.manifests.save(_manifest_of(snapshot, self.source.kind))
        self.save_bundle(snapshot.name)
        checked = "integrity_check ok" if snapshot.name.suffix == ".db" else "SHA-256 trailer valid"
        detail = f" {snapshot.detail}" if snapshot.detail else ""
        self.report.info(
            f"Snapshot {snapshot.name.filename} saved and checked"
            f" ({human_size(snapshot.check.size)}, {checked}){detail}"
        )
        return snapshot

    def ship(self, target: Target, newest: naming.SnapshotName) -> TargetResult:
        """Give `target` every local snapshot it lacks (oldest first), then rotate it."""
        result = TargetResult(ok=False)
        target_config = self.config.target(target.name)
        form = stored_form(target_config)
        self._remove_stale_temporaries(target, newest.node)
        listed = target_copies(target, self.config.cluster_name)
        present = {c.name.filename for c in listed if c.has_manifest}
        bundled = {c.name.filename for c in listed if c.has_bundle}
        for copy in local_copies(self.config.snapshot_dir, self.config.cluster_name):
            name = stored_name(copy.name, form)
            if name not in present:
                if copy.name != newest and not self._still_valid(copy.name):
                    continue
                self._ship_one(target, copy.name, self.manifests.get(copy.name), form)
                result.shipped.append(name)
                verb = "Copied" if copy.name == newest else "Caught up"
                self.report.info(f"{verb} {name} to {target.name}: SHA-256 verified")
            self._ship_bundle(target, copy.name, name, form, bundled)
        with self.phases.timed("rotate"):
            copies = target_copies(target, self.config.cluster_name)
            keep = frozenset({stored_name(newest, form)})
            retention = plan(copies, rules_of(target_config), keep)
            remove_from_target(target, retention.remove)
        result.removed = [n.filename for n in retention.remove]
        for removed in retention.remove:
            self.report.info(f"Rotated {removed.filename} off {target.name}")
        kept = target_copies(target, self.config.cluster_name)
        result.copies, result.bytes = len(kept), sum(c.size for c in kept)
        verified = [c for c in kept if c.has_manifest]  # a manifest is written after verifying
        if verified:
            result.newest, result.newest_unix = verified[-1].name.filename, verified[-1].name.unix
        result.ok = True
        return result

    def _remove_stale_temporaries(self, target: Target, node: str) -> None:
        """Remove the temporary uploads a killed run of this node left (a whole snapshot's
        worth of space each). Only this node's: we hold its lock, so none is in progress, while
        another node sharing the directory may be uploading right now."""
        cluster = self.config.cluster_name
        for stored in target.list():
            final = final_of_temp(stored.name)
            if final is None:
                continue
            snapshot = (
                naming.snapshot_of_manifest(cluster, final)
                or naming.snapshot_of_bundle(cluster, final)
                or final
            )
            parsed = naming.parse(cluster, snapshot)
            if parsed is not None and parsed.node == node:
                target.delete(stored.name)
                self.report.info(f"Removed {stored.name} on {target.name}, left by a killed run")

    def save_bundle(self, name: naming.SnapshotName) -> None:
        """Keep the restore bundle (token, K3s config) under state_dir; a failure only warns:
        the snapshot itself is good, but a rebuilt node will need the token from elsewhere."""
        try:
            made = bundle.collect(
                snapshot=name.filename,
                node=name.node,
                created=self.env.now().astimezone().isoformat(),
                data_dir=self.config.k3s.data_dir,
                config_dir=self.config.k3s.config_dir,
                k3s_bin=self.config.k3s.bin,
                environ=self.env.environ,
            )
            bundle.write(made, local_bundle_path(self.config.state_dir, name.filename))
        except (bundle.BundleError, OSError) as exc:
            self.report.warn(
                f"no restore bundle for {name.filename}: {exc}; keep a copy of"
                f" {bundle.token_path(self.config.k3s.data_dir)} elsewhere"
            )

    def _ship_bundle(
        self,
        target: Target,
        name: naming.SnapshotName,
        stored: str,
        form: StoredForm,
        bundled: set[str],
    ) -> None:
        """The restore bundle beside the copy, encrypted like it when the target encrypts."""
        path = local_bundle_path(self.config.state_dir, name.filename)
        if stored in bundled or not path.is_file():
            return
        body = path.read_bytes()
        if form.recipients:
            body = encrypt_bytes(body, form.recipients)
        put_bytes(target, naming.bundle_name(stored), body)

    def _still_valid(self, name: naming.SnapshotName) -> bool:
        try:
            check_snapshot(self.config.snapshot_dir / name.filename)
        except SnapshotError as exc:
            self.report.warn(f"not shipping {name.filename}: {exc}")
            return False
        return True

    def ship_everywhere(self, newest: naming.SnapshotName) -> dict[str, TargetResult]:
        return {t.name: self.ship_with_retries(t, newest) for t in self.config.targets}

    def ship_with_retries(
        self, target_config: TargetConfig, newest: naming.SnapshotName
    ) -> TargetResult:
        """Ship to one target; when its link fails, wait and start over on a new connection
        (`ship` catches up and clears its own temporaries, so a new attempt resumes cleanly).
        A refusal by the target itself (key, permission, full disk) is not tried again."""
        name, attempts = target_config.name, target_config.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                with open_target(target_config, self.config.cluster_name) as target:
                    return replace(self.ship(target, newest), attempts=attempt)
            except TargetUnreachable as exc:
                if attempt == attempts:
                    return self._target_failed(name, exc, attempt)
                delay = target_config.retry_delay
                self.report.warn(
                    f"target {name}: {exc}; trying again in {delay:g} s"
                    f" (attempt {attempt + 1} of {attempts})"
                )
                self.env.sleep(delay)
            except BackupError as exc:
                return self._target_failed(name, exc, attempt)
            except Exception as exc:  # a bug or an unforeseen fault: this target alone fails
                return self._target_failed(name, unexpected(exc), attempt)
        raise AssertionError("unreachable: the last attempt returns")

    def _target_failed(self, name: str, exc: BackupError, attempts: int) -> TargetResult:
        tried = f" (after {attempts} attempts)" if attempts > 1 else ""
        self.report.error(f"target {name} failed{tried}: {exc}")
        return TargetResult(ok=False, error=str(exc), attempts=attempts)

    def rotate_local_safely(self, newest: naming.SnapshotName) -> str | None:
        """Local rotation, whose failure must not cost the run its report and state record;
        what went wrong, or None."""
        try:
            self.rotate_local(newest)
        except BackupError as exc:
            problem = f"local rotation failed: {exc}"
        except Exception as exc:  # a bug or an unforeseen fault: reported, never a traceback
            problem = f"local rotation failed: {unexpected(exc)}"
        else:
            return None
        self.report.error(problem)
        return problem

    def rotate_local(self, newest: naming.SnapshotName) -> None:
        with self.phases.timed("rotate"):
            copies = local_copies(self.config.snapshot_dir, self.config.cluster_name)
            rules = GfsRules(last=self.config.keep_local)
            retention = plan(copies, rules, frozenset({newest.filename}))
            remove_local(retention.remove, self.source.delete, self.report.warn)
        for name in retention.remove:
            self.manifests.forget(name.filename)
            self.report.info(f"Rotated local snapshot {name.filename}")

    def local_summary(self) -> dict[str, Any]:
        local = local_copies(self.config.snapshot_dir, self.config.cluster_name)
        newest = local[-1].name if local else None
        return {
            "copies": len(local),
            "bytes": sum(c.size for c in local),
            "newest": newest.filename if newest else None,
            "newest_unix": newest.unix if newest else None,
        }

    def summarize(self, results: dict[str, TargetResult], local: dict[str, Any]) -> None:
        self.report.info(
            f"Local snapshots: {local['copies']} ({human_size(local['bytes'])})"
            f" in {self.config.snapshot_dir}"
        )
        for name, result in results.items():
            if result.ok:
                self.report.info(
                    f"Target {name}: {result.copies} copies ({human_size(result.bytes)})"
                )
            else:
                self.report.info(f"Target {name}: FAILED ({result.error})")


def unexpected(exc: Exception) -> BackupError:
    """An exception nothing foresaw, as a message that names it (never a traceback)."""
    detail: object = exc
    if isinstance(exc, OSError) and exc.strerror:
        detail = f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return BackupError(f"unexpected {type(exc).__name__}: {detail}")


def run_backup(config: Config, env: Environment, json_out: TextIO | None = None) -> ExitCode:
    """The whole run; with `json_out`, the run report goes there as JSON instead of the
    progress lines on stdout (they are still logged)."""
    reporter = Reporter(env, config.log_file, echo_info=json_out is None)
    if not config.targets:
        reporter.error(
            "no [[targets]] configured: a backup that never leaves this node is lost with its"
            " disk; add a target (see `k3s-backup config init`)"
        )
        return ExitCode.USAGE
    with exclusive_run(config.state_dir):
        code, record = _monitored_run(config, env, reporter)
    if json_out is not None:
        json_out.write(json.dumps(record, indent=2) + "\n")
    return code


def _monitored_run(
    config: Config, env: Environment, reporter: Reporter
) -> tuple[ExitCode, dict[str, Any]]:
    """Pings around the run, metrics and webhooks after it; none of them changes the outcome."""
    hooks = Hooks(config.notify, config.cluster_name, reporter)
    hooks.start()
    try:
        code, record = _locked_run(config, env, reporter)
    except Exception as exc:  # a crash is a failure the monitors must hear about
        hooks.finish({"outcome": "error", "exit_code": 1, "error": f"crashed: {exc!r}"})
        raise
    publish_metrics(config, env, reporter)
    hooks.finish(record)
    return code, record


def _locked_run(
    config: Config, env: Environment, reporter: Reporter
) -> tuple[ExitCode, dict[str, Any]]:
    started, clock = env.now(), time.monotonic()
    record: dict[str, Any] = {
        "cluster": config.cluster_name,
        "started": started.isoformat(),
        "snapshot": None,
        "targets": {},
        "local": None,
        "error": None,
    }
    run = Run(config, env, reporter)
    reporter.info(f"Starting etcd backup of cluster {config.cluster_name}")
    try:
        with run.phases.timed("snapshot"):
            snapshot = run.take_snapshot()
    except (SnapshotError, OSError) as exc:  # OSError: its manifest could not be recorded
        reason = unexpected(exc) if isinstance(exc, OSError) else exc
        record["error"] = f"snapshot failed, nothing shipped: {reason}"
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.FAILED, reporter)
    record["snapshot"] = {"name": snapshot.name.filename, "size": snapshot.check.size}
    results = run.ship_everywhere(snapshot.name)
    rotation_problem = run.rotate_local_safely(snapshot.name)
    record["local"] = run.local_summary()
    run.summarize(results, record["local"])
    record["targets"] = {name: asdict(r) for name, r in results.items()}
    failed = [name for name, r in results.items() if not r.ok]
    if failed or rotation_problem:
        what = [f"{', '.join(failed)} failed"] if failed else []
        what += [rotation_problem] if rotation_problem else []
        record["error"] = (
            f"backup PARTIAL: snapshot {snapshot.name.filename} kept locally, but {'; '.join(what)}"
        )
        reporter.error(record["error"])
        return _finish(config, env, record, clock, run.phases, ExitCode.PARTIAL, reporter)
    reporter.info(
        f"Backup complete: {snapshot.name.filename} on {len(results)} target(s), verified"
    )
    return _finish(config, env, record, clock, run.phases, ExitCode.OK, reporter)


def _finish(
    config: Config,
    env: Environment,
    record: dict[str, Any],
    clock: float,
    phases: Phases,
    code: ExitCode,
    reporter: Reporter,
) -> tuple[ExitCode, dict[str, Any]]:
    record.update(
        finished=env.now().isoformat(),
        outcome={0: "success", 1: "failed", 3: "partial"}.get(int(code), "error"),
        exit_code=int(code),
        duration_seconds=round(time.monotonic() - clock, 3),
        phases=phases.rounded(),
    )
    try:
        record_run(config.state_dir, record)
    except OSError as exc:
        reporter.warn(f"cannot record the run in {config.state_dir}: {exc.strerror}")
    return code, record

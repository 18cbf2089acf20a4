"""`k3s-backup demo`: the main job on an embedded default, on real parts.

A throwaway etcd (Debian's etcd-server) stands behind a stand-in `k3s` and `systemctl`, and a
real OpenSSH server on 127.0.0.1 plays the backup host. The demo writes keys, runs a real backup,
lists and verifies the copies, fetches the shipped copy and checks it with `etcdctl snapshot
status`; then it plays the 2 a.m. disaster (keys changed and deleted, the node's own snapshots
lost) and restores from the backup host, checking every key is back as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import click

from k3s_backup.cli_options import Context, MainFunction, pass_context
from k3s_backup.environment import Environment
from k3s_backup.errors import ExitCode

KEYS = 50


def _step(env: Environment, title: str) -> None:
    env.stdout.write(f"\n== {title}\n")


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("etcd", "etcdctl", "ssh-keygen") if shutil.which(tool) is None]
    return missing + ([] if Path("/usr/sbin/sshd").exists() else ["sshd"])


def run_demo(env: Environment, workdir: Path | None, main: MainFunction) -> ExitCode:
    if _missing_tools():
        env.stderr.write(
            "error: the demo needs Debian's etcd-server, etcd-client and openssh-server:"
            " apt-get install -y etcd-server etcd-client openssh-server\n"
        )
        return ExitCode.USAGE
    with ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="k3s-demo-")))
        root.mkdir(parents=True, exist_ok=True)
        return _Demo(env, root, stack, main).run()


class _Demo:
    def __init__(self, env: Environment, root: Path, stack: ExitStack, main: MainFunction) -> None:
        from k3s_backup.lab.lab import Lab

        self.env, self.root, self.main = env, root, main
        _step(env, f"Starting a throwaway etcd and SSH backup host on loopback in {root}")
        self.lab = stack.enter_context(Lab(root))
        self.config = self.lab.write_config(
            root / "config.toml",
            k3s={
                "bin": self.lab.bin_dir / "k3s",
                "data_dir": self.lab.data_dir,
                "config_dir": root / "etc-rancher-k3s",
            },
            restore={"ready_timeout": 60},
        )
        env.stdout.write(f"etcd at {self.lab.etcd.endpoint}, sshd at {self.lab.sshd.host}")
        env.stdout.write(f":{self.lab.sshd.port}\nconfiguration: {self.config}\n")

    def cli(self, title: str, *args: str) -> bool:
        _step(self.env, title)
        demo_env = replace(self.env, environ=self.lab.env())
        code = self.main(["--config", str(self.config), *args], demo_env)
        if code != ExitCode.OK:
            self.env.stderr.write(f"error: `{title}` exited {code}\n")
        return code == ExitCode.OK

    def run(self) -> ExitCode:
        from k3s_backup.lab.etcd import snapshot_status

        etcd = self.lab.etcd
        for i in range(KEYS):
            etcd.put(f"/registry/configmaps/default/demo-{i}", f"value-{i}")
        at_backup = etcd.get_all()
        fetched = self.root / "fetched.db"
        steps = (
            ("k3s-backup run", "run"),
            ("k3s-backup list", "list"),
            ("k3s-backup verify", "verify"),
            ("k3s-backup fetch (from the backup host)", "fetch", "latest", "--from",
             "backup-host", "--out", str(fetched), "--force"),
        )  # fmt: skip
        if not all(self.cli(title, *args) for title, *args in steps):
            return ExitCode.FAILED
        status = snapshot_status(fetched)
        self.env.stdout.write(f"etcdctl snapshot status {fetched.name}: {status}\n")

        _step(self.env, "Disaster: keys changed and deleted, this node's snapshots lost")
        etcd.put("/registry/configmaps/default/demo-0", "overwritten")
        etcd.delete("/registry/configmaps/default/demo-1")
        etcd.put("/registry/configmaps/default/created-after-the-backup", "x")
        shutil.rmtree(self.lab.snapshot_dir)
        self.env.stdout.write(f"removed {self.lab.snapshot_dir}\n")
        if not self.cli("k3s-backup restore --from backup-host --yes", "restore", "latest",
                        "--from", "backup-host", "--yes"):  # fmt: skip
            return ExitCode.FAILED
        if etcd.get_all() != at_backup:
            self.env.stderr.write("error: the restored keys differ from those backed up\n")
            return ExitCode.FAILED
        self.env.stdout.write(
            f"\nDemo complete: the backup shipped over SSH to {self.lab.remote_dir} was verified,"
            f" and restoring it brought back all {KEYS} keys exactly as they were backed up.\n"
        )
        return ExitCode.OK


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the lab here instead of a temporary directory.",
)
@pass_context
def command(ctx: Context, workdir: Path | None) -> int:
    """A real backup cycle against a throwaway etcd and SSH backup host on loopback."""
    return run_demo(ctx.env, workdir, ctx.main)

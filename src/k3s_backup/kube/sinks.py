"""Where extracted manifests go, one at a time in apply order (so memory stays flat in the
snapshot's size): stdout as a YAML stream or a JSON List, one 0600 file per object under a
directory, or a list kept for `--apply`."""

from __future__ import annotations

from pathlib import Path

from k3s_backup.environment import Environment
from k3s_backup.formats import kubernetes
from k3s_backup.kube import manifests
from k3s_backup.kube.manifests import Manifest


class Sink:
    """`add` returns why a manifest could not be written (a name that is no file name)."""

    def add(self, manifest: Manifest) -> str | None:
        raise NotImplementedError

    def add_raw(self, parsed: kubernetes.ObjectKey, plain: bytes) -> str | None:
        return "stored bytes are written only under --out"

    def close(self) -> None:
        pass


class YamlSink(Sink):
    def __init__(self, env: Environment) -> None:
        self.env = env

    def add(self, manifest: Manifest) -> str | None:
        self.env.stdout.write(manifests.yaml_stream([manifest]))
        return None


class JsonListSink(Sink):
    def __init__(self, env: Environment) -> None:
        self.env = env
        self.started = False

    def add(self, manifest: Manifest) -> str | None:
        out = self.env.stdout
        out.write(",\n" if self.started else '{"apiVersion": "v1", "kind": "List", "items": [\n')
        self.started = True
        out.write(manifests.json_text(manifest.body))
        return None

    def close(self) -> None:
        if self.started:
            self.env.stdout.write("\n]}\n")


class TreeSink(Sink):
    def __init__(self, out_dir: Path, output: str) -> None:
        self.out_dir = out_dir
        self.output = output

    def _write(self, manifest: Manifest, suffix: str, data: bytes) -> str | None:
        try:
            path = self.out_dir / manifests.relative_path(manifest, suffix)
        except ValueError as exc:
            return str(exc)
        try:
            manifests.write_private(path, data)
        except OSError as exc:
            return f"cannot write {path}: {exc.strerror}"
        return None

    def add(self, manifest: Manifest) -> str | None:
        suffix = ".json" if self.output == "json" else ".yaml"
        return self._write(manifest, suffix, manifests.render_one(manifest, self.output).encode())

    def add_raw(self, parsed: kubernetes.ObjectKey, plain: bytes) -> str | None:
        stub = Manifest(parsed.resource, parsed.namespace, parsed.name, {})
        return self._write(stub, ".raw", plain)


class ListSink(Sink):
    def __init__(self) -> None:
        self.manifests: list[Manifest] = []

    def add(self, manifest: Manifest) -> str | None:
        self.manifests.append(manifest)
        return None


def sink_for(output: str, out_dir: Path | None, apply: bool, env: Environment) -> Sink:
    if apply:
        return ListSink()
    if out_dir is not None:
        return TreeSink(out_dir, output)
    return JsonListSink(env) if output == "json" else YamlSink(env)

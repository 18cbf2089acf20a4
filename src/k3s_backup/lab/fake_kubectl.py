"""`k3s kubectl` of the stand-in: `get nodes`, `get RESOURCE NAME`, `apply -f -`, read from the
real etcd (apply records what it was given and answers as kubectl does)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from k3s_backup.lab.etcd import EtcdError, etcd_healthy, etcdctl
from k3s_backup.lab.k3s_cli import Logger

if TYPE_CHECKING:
    from k3s_backup.lab.fake_k3s import FakeK3sState

APPLIED_FILENAME = "kubectl-applied.jsonl"  # beside the state: each `kubectl apply` given
NODES_PREFIX = "/registry/minions/"


class KubectlMixin:
    state: FakeK3sState
    stdout: TextIO
    stdin: TextIO | None
    state_dir: Path | None
    log: Logger

    def kubectl(self, args: list[str]) -> int:
        if not self.state.service_active or not etcd_healthy(self.state.etcd_endpoint):
            self.log.raw(
                "The connection to the server 127.0.0.1:6443 was refused"
                " - did you specify the right host or port?"
            )
            return 1
        if args[:1] == ["apply"]:
            return self._kubectl_apply(args[1:])
        if args[:2] not in (["get", "nodes"], ["get", "node"], ["get", "no"]):
            if args[:1] == ["get"] and len(args) >= 3:
                return self._kubectl_get_one(args[1:])
            self.log.raw(
                "error: the fake k3s kubectl only knows `get nodes`, `get RESOURCE NAME` and"
                " `apply -f -`"
            )
            return 1
        # This node is Ready; the other nodes the datastore lists (a restored snapshot's lost
        # servers among them) have no kubelet here: NotReady, as in K3s.
        node = self.state.node_name
        others = sorted(set(self._registered_nodes()) - {node})
        width = max([len(n) for n in [node, *others]] + [4]) + 3
        rows = [f"{node:<{width}}Ready    control-plane,etcd,master   42d   {self.state.version}"]
        rows += [
            f"{other:<{width}}NotReady control-plane,etcd,master   42d   {self.state.version}"
            for other in others
        ]
        header = f"{'NAME':<{width}}STATUS   ROLES                       AGE   VERSION"
        self.stdout.write("\n".join([header, *rows]) + "\n")
        return 0

    def _exists(self, key: str) -> bytes | None:
        try:
            reply = etcdctl(["get", "--print-value-only", "--", key], self.state.etcd_endpoint)
        except EtcdError:
            return None
        return reply or None

    def _kubectl_get_one(self, args: list[str]) -> int:
        """`get RESOURCE NAME [-n NS] [-o name] [--ignore-not-found]`, read from etcd."""
        words, flags = _kubectl_flags(args)
        resource, name = words[0], words[1]
        namespace = flags.get("n") or flags.get("namespace")
        value = self._exists(_etcd_key(resource, namespace, name))
        if value is None:
            if "ignore-not-found" in flags:
                return 0
            self.log.raw(f'Error from server (NotFound): {resource} "{name}" not found')
            return 1
        from k3s_backup.formats.kubernetes import decode_value

        stored = decode_value(value)
        group = (stored.api_version or "").rpartition("/")[0]
        kind = (stored.kind or resource).lower() + (f".{group}" if group else "")
        self.stdout.write(f"{kind}/{name}\n")
        return 0

    def _kubectl_apply(self, args: list[str]) -> int:
        """`apply [--dry-run=server] -f -`: records what it was given beside the state file and
        answers as kubectl does, one line per object; the objects are not written to etcd."""
        _words, flags = _kubectl_flags(args)
        if flags.get("f") != "-" or self.stdin is None:
            self.log.raw("error: the fake k3s kubectl applies only -f - (stdin)")
            return 1
        text = self.stdin.read()
        if self.state_dir is not None:
            with (self.state_dir / APPLIED_FILENAME).open("a") as record:
                record.write(json.dumps({"args": args, "stdin": text}) + "\n")
        import yaml

        suffix = " (server dry run)" if flags.get("dry-run") == "server" else ""
        for document in yaml.safe_load_all(text):
            if not isinstance(document, dict) or not document.get("metadata", {}).get("name"):
                self.log.raw("error: error validating data: metadata.name is missing")
                return 1
            kind, api_version = str(document.get("kind", "")), str(document["apiVersion"])
            meta = document["metadata"]
            group = api_version.rpartition("/")[0]
            resource = _plural(kind) + (f".{group}" if group else "")
            exists = self._exists(_etcd_key(resource, meta.get("namespace"), meta["name"]))
            verb = "configured" if exists else "created"
            shown = kind.lower() + (f".{group}" if group else "")
            self.stdout.write(f"{shown}/{meta['name']} {verb}{suffix}\n")
        return 0

    def _registered_nodes(self) -> list[str]:
        """The Node objects in etcd: the keys under /registry/minions/."""
        try:
            keys = etcdctl(
                ["get", "--prefix", "--keys-only", NODES_PREFIX], self.state.etcd_endpoint
            ).decode()
        except EtcdError:
            return []
        return [k[len(NODES_PREFIX) :] for k in keys.split() if k.startswith(NODES_PREFIX)]


def _kubectl_flags(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """kubectl's `-n NS`, `--namespace=NS`, `-o name`, `-f -`, `--flag` (value "true")."""
    words: list[str] = []
    flags: dict[str, str] = {}
    rest = iter(args)
    for arg in rest:
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            flags[name] = value if has_value else "true"
        elif arg.startswith("-") and len(arg) == 2:
            flags[arg[1:]] = next(rest, "")
        else:
            words.append(arg)
    return words, flags


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith(("s", "x")) else "s")


# Resources etcd keeps under another name than kubectl's.
_ETCD_RESOURCE = {"services": "services/specs", "nodes": "minions", "ingresses": "ingress"}


def _etcd_key(resource: str, namespace: str | None, name: str) -> str:
    """Where the API server keeps RESOURCE[.group] NAME: `/registry/[<group>/]<resource>/...`;
    built-in groups (`apps`, `*.k8s.io`) are not in the key, others are."""
    plural, _dot, group = resource.partition(".")
    plural = _ETCD_RESOURCE.get(plural, plural)
    path = f"{group}/{plural}" if "." in group and not group.endswith("k8s.io") else plural
    if group == "apiextensions.k8s.io" or group == "apiregistration.k8s.io":
        path = f"{group}/{plural}"
    return f"/registry/{path}/" + (f"{namespace}/" if namespace else "") + name

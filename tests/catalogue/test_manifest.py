"""Manifests are read from targets others can write: anything that is not one of ours is a
ValueError (the callers' "unreadable manifest"), never another exception or a wrong type."""

from __future__ import annotations

import json

import pytest

from k3s_backup.catalogue.manifest import Manifest, ManifestError
from k3s_backup.policy.naming import parse

NAME = "k3s-lab-20261123-020000-k3s-05-1795399200"


def good() -> dict[str, object]:
    parsed = parse("k3s-lab", NAME)
    assert parsed is not None
    from k3s_backup.catalogue.manifest import for_snapshot

    loaded: dict[str, object] = json.loads(for_snapshot(parsed, "k3s", 10, "0" * 64).to_json())
    return loaded


def test_a_manifest_reads_back_as_written():
    manifest = Manifest.from_json(json.dumps(good()).encode())
    assert (manifest.name, manifest.size, manifest.plain_size) == (NAME, 10, 10)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"[" * 100_000, "nested too deeply"),
        (b"[]", "a JSON list, not an object"),
        (b"7", "a JSON int, not an object"),
        (b'"name"', "a JSON str, not an object"),
        (b"{}", "no 'name'"),
    ],
)
def test_json_that_is_no_manifest_object_is_a_manifest_error(data, problem):
    with pytest.raises(ManifestError, match=problem):
        Manifest.from_json(data)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("size", "10"),
        ("size", 10.5),
        ("size", True),
        ("name", 7),
        ("sha256", None),
        ("plain_size", []),
    ],
)
def test_a_field_of_the_wrong_type_is_a_manifest_error(key, value):
    fields = {**good(), key: value}
    with pytest.raises(ManifestError, match=f"'{key}' must be a JSON"):
        Manifest.from_json(json.dumps(fields).encode())

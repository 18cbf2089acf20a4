"""Fuzz: manifests read from targets (manifest.Manifest.from_json)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from k3s_backup.catalogue.manifest import _FIELD_TYPES, Manifest
from tests.fuzz.harness import fuzz_target, mutated, seed

SEED = seed("manifest.json")
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """A real manifest with fields replaced by any JSON, or its bytes mutated."""
    if draw(st.booleans()):
        return draw(mutated([SEED], page=64))
    fields = json.loads(SEED)
    for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
        if draw(st.booleans()):
            fields[key] = draw(_JSON)
        else:
            fields.pop(key, None)
    return json.dumps(draw(st.one_of(st.just(fields), _JSON))).encode()


@fuzz_target(manifests(), examples=200)
def test_manifest(data: bytes) -> None:
    try:
        manifest = Manifest.from_json(data)
    except ValueError:  # ManifestError, or json's own: what every caller expects
        return
    for name, field in Manifest.__dataclass_fields__.items():
        value = getattr(manifest, name)
        assert isinstance(value, _FIELD_TYPES[str(field.type)]), (name, value)

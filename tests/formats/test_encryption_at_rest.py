"""Encryption configs as K3s writes them (and damaged ones): keys read, or a message naming what
is wrong; values under providers we cannot decrypt named as such."""

from __future__ import annotations

import base64
import json

import pytest

from k3s_backup.errors import ConfigError
from k3s_backup.formats.encryption_at_rest import (
    DecryptionError,
    decrypt,
    parse_config,
    sealed,
)

KEY = base64.b64encode(bytes(range(32))).decode()


def config(*providers: dict[str, object]) -> bytes:
    document = {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{"resources": ["secrets"], "providers": list(providers)}],
    }
    return json.dumps(document).encode()


def test_keys_of_every_decryptable_provider_are_read_and_others_ignored():
    ring = parse_config(
        config(
            {"aescbc": {"keys": [{"name": "aescbckey", "secret": KEY}]}},
            {"secretbox": {"keys": [{"name": "box", "secret": KEY}]}},
            {"kms": {"name": "vault", "endpoint": "unix:///kms.sock"}},
            {"identity": {}},
        ),
        "cfg",
    )
    assert set(ring.keys) == {("aescbc", "aescbckey"), ("secretbox", "box")}
    assert ring.keys[("aescbc", "aescbckey")] == bytes(range(32))


def test_a_hand_written_yaml_config_reads_too():
    text = f"""
kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: {KEY}
"""
    assert set(parse_config(text.encode(), "cfg").keys) == {("aesgcm", "key1")}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2", "cfg: not an EncryptionConfiguration"),
        (b'{"kind": "Secret"}', "cfg: not an EncryptionConfiguration"),
        (config({"aescbc": {"keys": [{"name": "k"}]}}), "cfg: a aescbc key without a name"),
        (
            config({"aescbc": {"keys": [{"name": "k", "secret": "!!"}]}}),
            "cfg: aescbc key 'k' is not base64",
        ),
        (
            config({"secretbox": {"keys": [{"name": "k", "secret": "AAAA"}]}}),
            "cfg: secretbox key 'k' has 3 bytes",
        ),
    ],
)
def test_a_damaged_config_is_a_config_error_naming_what_is_wrong(data, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        parse_config(data, "cfg")


def test_plain_values_pass_and_unknown_providers_are_named():
    assert decrypt(b"k8s\x00plain", b"/registry/secrets/a/b", None) == b"k8s\x00plain"
    assert sealed(b"k8s:enc:aescbc:v1:k:payload") is not None
    with pytest.raises(DecryptionError, match="'k': an unknown provider"):
        decrypt(b"k8s:enc:rot13:v1:k:payload", b"/registry/secrets/a/b", None)

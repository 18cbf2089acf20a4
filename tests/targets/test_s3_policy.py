"""The node's least-privilege bucket policy in docs/configuration.md stays true to the S3 target:
it allows every action the target's S3 calls need, and none that would let a stolen node
credential undo Object Lock. (The lab's S3 server, moto, models no IAM: the policy cannot be
exercised there, so the calls are read from the target's source instead.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import k3s_backup.targets.s3 as s3_target

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"
# Each S3 call of targets/s3.py and the IAM actions it needs (boto3's managed transfers:
# multipart parts are PutObject; a copy reads its source and writes, with the lock, its target).
NEEDS = {
    "put_object": {"s3:PutObject", "s3:PutObjectRetention"},
    "upload_fileobj": {"s3:PutObject"},
    "copy": {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
    "get_object": {"s3:GetObject", "s3:GetObjectVersion"},
    "head_object": {"s3:GetObject", "s3:GetObjectRetention"},
    "delete_object": {"s3:DeleteObject", "s3:DeleteObjectVersion"},
    "put_object_retention": {"s3:PutObjectRetention"},
    "list_objects_v2": {"s3:ListBucket"},
    "list_object_versions": {"s3:ListBucketVersions"},
    "head_bucket": {"s3:ListBucket"},
    "get_object_lock_configuration": {"s3:GetBucketObjectLockConfiguration"},
}
NEVER = {
    "s3:BypassGovernanceRetention",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketPolicy",
    "s3:DeleteBucket",
    "s3:*",
}


def documented_policy() -> dict[str, object]:
    text = DOCS.read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        if '"K3sBackupNode"' in block:
            policy: dict[str, object] = json.loads(block)
            return policy
    raise AssertionError("docs/configuration.md lost the node's bucket policy")


def allowed_actions(policy: dict[str, object]) -> set[str]:
    allowed: set[str] = set()
    statements = policy["Statement"]
    assert isinstance(statements, list)
    for statement in statements:
        if statement["Effect"] == "Allow":
            actions = statement["Action"]
            allowed |= {actions} if isinstance(actions, str) else set(actions)
    return allowed


def calls_of_the_target() -> set[str]:
    source = Path(s3_target.__file__).read_text()
    calls = set(re.findall(r"self\.client\.(\w+)\(", source))
    calls |= set(re.findall(r"get_paginator\(\"(\w+)\"\)", source))
    return calls - {"get_paginator"}


def test_the_policy_allows_every_call_the_s3_target_makes() -> None:
    calls = calls_of_the_target()
    assert calls - NEEDS.keys() == set(), "a new S3 call: add what it needs here and to the doc"
    needed = set().union(*(NEEDS[call] for call in calls))
    assert needed - allowed_actions(documented_policy()) == set()


def test_the_policy_allows_nothing_that_undoes_object_lock() -> None:
    allowed = allowed_actions(documented_policy())
    assert allowed & NEVER == set()
    assert all(action.startswith("s3:") and "*" not in action for action in allowed)

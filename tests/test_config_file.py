"""The configuration file rewritten with new values: the values are exactly the new ones, and
every comment and untouched line of the operator's file is still there."""

from __future__ import annotations

import tomllib

from k3s_backup.commands.config_cmd import TEMPLATE
from k3s_backup.config_file import updated


def comments(text: str) -> list[str]:
    """Each comment, from its `#` to the end of its line."""
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


def test_the_same_values_give_back_the_same_text_byte_for_byte():
    assert updated(TEMPLATE, tomllib.loads(TEMPLATE)) == TEMPLATE


def test_changed_added_and_removed_values_keep_every_comment_of_the_template():
    data = tomllib.loads(TEMPLATE)
    data["targets"][0]["host"] = "10.0.0.5"
    data["targets"][0]["connect_timeout"] = 15
    data["drill_schedule"] = "0 4 * * 0"
    del data["notify"]["webhook_on_success"]
    text = updated(TEMPLATE, data)
    assert tomllib.loads(text) == data
    removed = "# also POST the report when the run succeeded"
    assert comments(text) == [c for c in comments(TEMPLATE) if c != removed]
    assert 'type = "ssh"              # ssh | local | s3' in text  # untouched lines as written
    # A new key of the target goes after its last key, not under the comments that follow it
    # (they introduce the commented-out targets and [notify]).
    lines = text.splitlines()
    assert lines[lines.index("connect_timeout = 15") - 1].startswith("retry_delay = 30")


def test_a_new_target_table_is_added_after_the_others():
    data = tomllib.loads(TEMPLATE)
    data["targets"].append({"name": "usb", "type": "local", "path": "/mnt/usb", "keep": 3})
    text = updated(TEMPLATE, data)
    assert tomllib.loads(text) == data
    assert comments(text) == comments(TEMPLATE)


def test_a_file_that_does_not_exist_yet_gets_the_values():
    data = {"cluster_name": "c", "targets": [{"name": "h", "type": "ssh", "host": "h"}]}
    assert tomllib.loads(updated(None, data)) == data

"""Which snapshot a user means, among the copies found at every location."""

from __future__ import annotations

import pytest

from k3s_backup.catalogue.inventory import LOCAL, Copy
from k3s_backup.catalogue.lookup import LATEST, ChoiceError, choose, copies_of
from k3s_backup.errors import ExitCode, SnapshotError
from k3s_backup.policy import naming

OLD = "home-20261123-020000-pi-1795399200"
NEW = "home-20261124-020000-pi-1795485600"


def copy(filename: str, location: str = LOCAL) -> Copy:
    name = naming.parse("home", filename)
    assert name is not None
    return Copy(name, location, 100, has_manifest=True)


FOUND = [copy(OLD), copy(NEW), copy(f"{NEW}.zst", "usb"), copy(f"{OLD}.zst.age", "usb")]


def test_latest_is_the_newest_snapshot_whatever_its_stored_form() -> None:
    assert choose(FOUND, LATEST) == NEW


def test_a_stored_form_names_its_snapshot_and_every_copy_of_it_comes_in_order() -> None:
    assert choose(FOUND, f"{OLD}.zst.age") == OLD
    assert [(c.location, c.name.filename) for c in copies_of(FOUND, OLD)] == [
        (LOCAL, OLD),
        ("usb", f"{OLD}.zst.age"),
    ]


def test_a_unique_prefix_is_enough() -> None:
    assert choose(FOUND, "home-20261123") == OLD


def test_an_ambiguous_prefix_lists_the_snapshots_it_matches_as_a_usage_error() -> None:
    with pytest.raises(ChoiceError, match="matches 2 snapshots; be more precise") as raised:
        choose(FOUND, "home-2026112")
    assert raised.value.exit_code == ExitCode.USAGE
    assert f"  {NEW}\n  {OLD}" in str(raised.value)  # newest first


def test_an_unknown_name_lists_what_exists() -> None:
    with pytest.raises(ChoiceError) as raised:
        choose(FOUND, "nope")
    assert str(raised.value) == (
        f"no snapshot named 'nope'; these exist (newest first):\n  {NEW}\n  {OLD}"
    )


def test_no_copy_anywhere_is_said_so() -> None:
    with pytest.raises(SnapshotError, match="no snapshot of ours found at any location"):
        choose([], LATEST)

"""The configuration file rewritten with new values, the operator's comments and layout kept.

`setup` changes a few values of a file the operator (or `config init`'s template) wrote; a
plain TOML writer would drop every comment. tomlkit parses the text into a document that keeps
comments, whitespace and order, so only the values that differ are replaced, added or removed;
a value that stays the same keeps its exact text.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import tomlkit
from tomlkit.items import AoT, Item, Table


def _plain(item: Any) -> Any:
    return item.unwrap() if isinstance(item, Item) else item


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _merge(container: MutableMapping[str, Any], data: dict[str, Any]) -> None:
    """Make `container` hold exactly `data`, touching only what differs."""
    for key in [key for key in container if key not in data]:
        del container[key]
    for key, value in data.items():
        current = container.get(key)
        if current is not None and _plain(current) == value:
            continue  # the same value: its text, comment and place stay
        if isinstance(value, dict) and isinstance(current, MutableMapping):
            _merge(current, value)
        elif _is_table_array(value) and isinstance(current, AoT) and len(current) <= len(value):
            for table, item in zip(current, value[: len(current)], strict=True):
                _merge(table, item)
            for item in value[len(current) :]:  # a new [[targets]] table after the others
                current.append(tomlkit.item(item))
        elif current is None:
            _add(container, key, value)
        else:
            container[key] = _with_comment_of(current, value)


def _with_comment_of(current: Any, value: Any) -> Any:
    """`value` as an item carrying the comment that followed the value it replaces."""
    item = tomlkit.item(value)
    if isinstance(current, Item) and current.trivia.comment and not isinstance(item, Table | AoT):
        item.trivia.comment_ws = current.trivia.comment_ws
        item.trivia.comment = current.trivia.comment
    return item


def _add(container: MutableMapping[str, Any], key: str, value: Any) -> None:
    """A new key of a table goes after the table's last key, not after the comments that
    follow it (those introduce what comes next in the file)."""
    if isinstance(container, Table):
        body = container.value.body
        keys = [k for k, item in body if k is not None and not isinstance(item, Table | AoT)]
        if keys:
            container.value._insert_after(keys[-1], key, value)  # tomlkit's own placement
            return
    container[key] = value


def updated(text: str | None, data: dict[str, Any]) -> str:
    """`text` (a TOML file's content; None: no file yet) changed to hold exactly `data`."""
    document = tomlkit.parse(text) if text is not None else tomlkit.document()
    _merge(document, data)
    return tomlkit.dumps(document)


# -- `config show`: the effective configuration, written as the operator would write it -------

SHOWN_HEADER = (
    "The effective configuration: the file's values and every default, as TOML that loads",
    "back as the same configuration (but for a redacted URL). Unset keys are comments.",
)


def shown(data: dict[str, Any], redacted_keys: frozenset[str] = frozenset()) -> str:
    """`data` (a model_dump, None for an unset key) as TOML: a target's name and type first,
    whole-number seconds as integers (`timeout = 10`, as the template writes them), each
    unset key a comment, the redacted keys marked so."""
    document = tomlkit.document()
    for line in SHOWN_HEADER:
        document.add(tomlkit.comment(line))
    document.add(tomlkit.nl())
    _fill(document, data, redacted_keys)
    return tomlkit.dumps(document)


def _fill(
    container: MutableMapping[str, Any], data: dict[str, Any], redacted_keys: frozenset[str]
) -> None:
    add = container.add  # type: ignore[attr-defined]  # Table and TOMLDocument both have it
    first = [key for key in ("name", "type") if key in data]
    keys = first + [key for key in data if key not in first]
    nested = [key for key in keys if isinstance(data[key], dict) or _is_table_array(data[key])]
    for key in [key for key in keys if key not in nested]:  # TOML: a table's keys before its
        value = data[key]  # sub-tables, or they would belong to the last sub-table
        if value is None:
            add(tomlkit.comment(f"{key} = ...  (unset)"))
            continue
        item = tomlkit.item(_whole(value))
        if key in redacted_keys:
            item.comment("redacted: its path is a secret, not shown")
        add(key, item)
    for key in nested:
        value = data[key]
        if isinstance(value, dict):
            table = tomlkit.table()
            _fill(table, value, redacted_keys)
            add(key, table)
            continue
        tables = tomlkit.aot()
        for entry in value:
            table = tomlkit.table()
            _fill(table, entry, redacted_keys)
            tables.append(table)
        add(key, tables)


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value

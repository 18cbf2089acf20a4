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

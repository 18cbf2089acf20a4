"""One POST with a timeout and retries, for notifiers. The standard library's urllib is enough
for that, so notifying adds no dependency."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from k3s_backup import __version__

RETRY_DELAY = 1.0  # seconds before the second attempt; doubled before each further one


class DeliveryError(Exception):
    """The request failed every attempt; the message says why the last one did."""


def origin(url: str) -> str:
    """scheme://host[:port] of `url`: its path and query often hold a secret (a check's UUID,
    a chat token), so messages and logs show only this."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _gives_up(exc: BaseException) -> bool:
    """A 4xx other than 429 will not heal by asking again (wrong URL, bad token)."""
    return isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500 and exc.code != 429


def _post_once(url: str, body: bytes, content_type: str, timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "User-Agent": f"k3s-backup/{__version__}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def post(
    url: str,
    body: bytes,
    content_type: str,
    timeout: float,
    retries: int,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """POST `body`; `timeout` applies to connecting and to each read. DeliveryError if every
    one of the 1 + `retries` attempts failed."""
    attempts = 0
    while True:
        attempts += 1
        try:
            _post_once(url, body, content_type, timeout)
            return
        except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts included
            if attempts > retries or _gives_up(exc):
                plural = "s" if attempts > 1 else ""
                raise DeliveryError(f"{_reason(exc)} (after {attempts} attempt{plural})") from None
        sleep(RETRY_DELAY * 2 ** (attempts - 1))

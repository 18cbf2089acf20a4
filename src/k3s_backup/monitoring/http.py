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
from k3s_backup.plumbing.retry import Retry

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


def _may_heal(exc: Exception) -> bool:
    """A failed link or a server error; a 4xx other than 429 will not heal by asking again
    (wrong URL, bad token)."""
    if isinstance(exc, urllib.error.HTTPError):
        return not (400 <= exc.code < 500 and exc.code != 429)
    return isinstance(exc, (OSError, http.client.HTTPException))


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
    retry = Retry(retries, _may_heal, lambda failed: RETRY_DELAY * 2 ** (failed - 1), sleep)
    try:
        retry(lambda: _post_once(url, body, content_type, timeout))
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts included
        plural = "s" if retry.attempt > 1 else ""
        raise DeliveryError(f"{_reason(exc)} (after {retry.attempt} attempt{plural})") from None

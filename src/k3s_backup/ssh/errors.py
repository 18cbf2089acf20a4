"""What paramiko raises, sorted into what the operator is told: a link that failed (worth a
later attempt), a key the host refused, or anything else, each in plain words."""

from __future__ import annotations

import errno
import socket

import paramiko
from paramiko.ssh_exception import NoValidConnectionsError

from k3s_backup.errors import TargetError

# What a dead or cut connection raises in paramiko: socket errors, protocol errors, and EOFError
# from its packetizer (a send on a reset socket, a read at end of stream). EOFError must never
# escape: click would turn it into "Aborted." and exit 1 instead of a target failure.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, paramiko.SSHException)

# errno values of a failing link, as opposed to the SFTP server's answers (EACCES, ENOENT, ...),
# which paramiko raises as OSError too.
_LINK_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ETIMEDOUT}
)

# paramiko's words for what a user sees, and ours for them.
_PLAIN_WORDS = {
    "Error reading SSH protocol banner": (
        "no SSH server answered there (it sent no SSH banner); check the host and the port"
    ),
    "No existing session": (
        "the server closed the connection before the key was checked (see its sshd log:"
        " MaxStartups, a firewall, AllowUsers)"
    ),
}


CLOSED = (
    "the connection was closed from the other end (the server's sshd log says why: MaxStartups,"
    " a firewall, AllowUsers, or a server that is not sshd)"
)


class KeyRefusedError(TargetError):
    """The host refused our key (it is not in authorized_keys there)."""


def link_failed(exc: BaseException) -> bool:
    """A cut, reset, refused or timed-out connection, which a later attempt may not meet; not
    the host refusing our key, a permission or a name."""
    if isinstance(exc, paramiko.AuthenticationException):
        return False
    if isinstance(exc, NoValidConnectionsError):  # every address refused or unreachable
        return any(link_failed(error) for error in exc.errors.values())
    if isinstance(exc, (EOFError, paramiko.SSHException, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, socket.gaierror):  # only "try again" is a blip; an unknown name is not
        return exc.errno == socket.EAI_AGAIN
    return isinstance(exc, OSError) and exc.errno in _LINK_ERRNOS


def reason(exc: BaseException) -> str:
    """What went wrong, for a message: the OS's words when there are some, plain words for
    paramiko's own."""
    if isinstance(exc, NoValidConnectionsError):  # "Unable to connect to port 22 on ...": why?
        return "; ".join(sorted({reason(error) for error in exc.errors.values()}))
    if isinstance(exc, EOFError) and not str(exc):  # paramiko's reader met the end of stream
        return CLOSED
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return next((plain for said, plain in _PLAIN_WORDS.items() if text.startswith(said)), text)

"""paramiko's words turned into the operator's: what `reason` says for each exception a
connection raises, with no paramiko text that names neither the cause nor the fix."""

from __future__ import annotations

import errno

import paramiko
import pytest
from paramiko.ssh_exception import NoValidConnectionsError

from k3s_backup.ssh.errors import link_failed, reason


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (paramiko.SSHException("No existing session"), "the server closed the connection before"),
        (
            paramiko.SSHException("Error reading SSH protocol banner[Errno 104] reset"),
            "no SSH server answered there (it sent no SSH banner)",
        ),
        (EOFError(), "the connection was closed from the other end"),
        (
            NoValidConnectionsError({("127.0.0.1", 22): ConnectionRefusedError(111, "refused")}),
            "refused",
        ),
        (OSError(errno.EISDIR, "Is a directory"), "Is a directory"),
    ],
)
def test_each_paramiko_failure_is_said_in_plain_words(exc, said):
    assert reason(exc).startswith(said)
    assert "EOFError" not in reason(exc) and "Unable to connect to port" not in reason(exc)


def test_a_refused_key_is_not_a_link_failure_but_a_cut_link_is():
    assert not link_failed(paramiko.AuthenticationException("refused"))
    assert link_failed(EOFError())
    assert link_failed(NoValidConnectionsError({("h", 22): ConnectionRefusedError(111, "x")}))

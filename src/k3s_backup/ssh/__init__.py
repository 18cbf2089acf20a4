"""SSH: one session per host (session.py), host keys (hostkeys.py), paramiko's errors sorted
(errors.py) and the private parts of paramiko we rely on (paramiko_quirks.py), the node's key
(keyfile.py loads it, nodekeys.py makes it and its authorized_keys lines)."""

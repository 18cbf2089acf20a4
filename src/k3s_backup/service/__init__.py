"""The backup host's side of k3s-backup: a forced-command service (borg's `serve` model).

Standard library and k3s_backup's pure modules only: sshd starts it for every connection.
"""

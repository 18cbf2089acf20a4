"""k3s-backup: off-node, verified, rotated etcd backups for K3s."""

__version__ = "0.1.0"

"""Restore's parts: pre-flight checks and the peer nodes (plan and executors follow)."""

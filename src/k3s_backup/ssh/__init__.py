"""SSH: the node's key and key files (the session and host keys follow)."""

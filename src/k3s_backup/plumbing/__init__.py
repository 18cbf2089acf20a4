"""Plumbing every layer shares: atomic files, streams, locks, deadlines, signals, progress,
loopback servers."""

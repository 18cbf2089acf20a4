"""Kubernetes objects taken out of a snapshot: manifests for `kubectl apply` and applying them."""

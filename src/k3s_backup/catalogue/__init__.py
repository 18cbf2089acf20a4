"""The catalogue of our copies: manifests, bundles, stored forms, what each location holds,
rotation, other clusters, trust."""

"""The catalogue of our copies: manifests, bundles, stored forms, what each location holds,
rotation, other clusters, trust; and getting a copy back: which one is meant (lookup), fetched
and verified (retrieval), opened as a plain snapshot (opening) and read (reading)."""

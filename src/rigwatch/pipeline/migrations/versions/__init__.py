"""Migration scripts of the manifest, one per schema version."""

"""transport components (each module registers itself; see gostfast.registry)."""

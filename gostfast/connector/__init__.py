"""connector components (each module registers itself; see gostfast.registry)."""

"""Configuration: one typed model (model.py) built from GOST YAML (yaml.py) or GOST URLs (url.py)."""

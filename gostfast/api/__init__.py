"""GOST's web API (``api:`` / ``-api``): document.py, controller.py, server.py."""

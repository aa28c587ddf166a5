"""Serving a release: a query library, a CLI (`python -m serving`) and an HTTP service."""

"""georeg benchmarks: ``python -m bench [name ...]`` (``make bench``) runs them from the project root."""

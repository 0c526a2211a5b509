"""Prefect flows: thin wrappers over ``georeg.core`` functions."""

"""georeg HTTP API (FastAPI). Build it with :func:`georeg.api.app.create_app`."""

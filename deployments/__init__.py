"""Work pool, deployment registration and the embedded supervisor (``georeg serve``)."""

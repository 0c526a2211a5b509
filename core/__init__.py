"""georeg domain core: configuration, errors, models, repositories and pure logic.

Imports neither FastAPI nor Prefect.
"""

__version__ = "0.1.0"

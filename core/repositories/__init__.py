"""Repository functions: keyword-only, each taking the SQLModel ``session`` first."""

"""OGC CSW catalogues: search, record parsing and the ingest of a record's files."""

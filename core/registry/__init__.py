"""The Registry API's domain: users, organizations, datasets, entries (files), access rules and
stored objects."""

"""One module per model family; each declares its members in ``SPECS`` (read by the registry)."""

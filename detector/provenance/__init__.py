"""The file's own evidence: C2PA content credentials and container metadata."""

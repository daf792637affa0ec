"""Raw histories in: CSV and SQLite sources, what a valid cell is, ingest, synthetic histories."""

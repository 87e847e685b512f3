"""``make demo``: every stage from files to the report. May import any part of the package."""

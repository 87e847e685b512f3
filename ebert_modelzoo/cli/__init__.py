"""Command-line entry points (run.py, cszoo)."""

"""Command-line entry points (run.py, cszoo). May import any part of the package."""

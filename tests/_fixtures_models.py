"""Session fixtures for the models tests (imported by conftest.py)."""

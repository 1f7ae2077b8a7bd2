"""Session fixtures for the diffusion tests (imported by conftest.py)."""

"""Pytest fixtures for users' own tests (placeholder until the emulator lands)."""

"""Test infrastructure: real servers started by the project's own scripts, as pytest fixtures.

Every module here is loaded as a pytest plugin by tests/conftest.py.
"""

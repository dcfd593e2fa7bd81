"""Installed in test subprocesses whose PYTHONPATH starts here: see tests/no_metadata.py."""
from tests.no_metadata import install

install()

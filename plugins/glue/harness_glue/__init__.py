"""GLUE tasks for harness, declared as TOML task cards (see plugin.py)."""

__version__ = "0.1.0"

"""GLUE tasks for harness (see plugin.py)."""

"""Spine MRI report tasks for harness (see plugin.py)."""

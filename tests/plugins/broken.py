"""A fixture plugin that fails at import time."""

raise ImportError("this fixture plugin is broken on purpose")

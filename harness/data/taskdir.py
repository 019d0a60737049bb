"""``--tasks-dir DIR``: a user's TOML task cards, registered like any plugin's tasks."""

from __future__ import annotations

from pathlib import Path

from harness.api import Register
from harness.hookspecs import hookimpl


def plugin_name(directory: Path) -> str:
    """The name the cards of ``--tasks-dir DIR`` are registered under: ``tasks-dir:DIR``."""
    return f"tasks-dir:{directory}"


class TaskDirPlugin:
    """Registers every card in one folder (validated by ``harness.data.cards.load_cards``)."""

    def __init__(self, directory: Path):
        self.directory = directory

    @hookimpl
    def register_tasks(self, register: Register) -> None:
        from harness.data.cards import load_cards

        for spec in load_cards(self.directory):
            register(spec)

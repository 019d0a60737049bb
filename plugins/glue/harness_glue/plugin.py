"""The GLUE tasks, declared as TOML task cards and registered through ``register_tasks``.

The cards live in the repository's ``tasks/glue``; an installed wheel carries a copy in
``harness_glue/cards``. The data are the GLUE distribution's TSV files under one folder,
given with ``--data DIR`` or the environment variable ``HARNESS_GLUE_DIR``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness import LoadContext, Register, TaskSpec, hookimpl, load_cards
from harness.errors import DataError

if TYPE_CHECKING:
    import datasets

ROOT_ENV = "HARNESS_GLUE_DIR"


def cards_dir() -> Path:
    """The packaged cards when installed from a wheel, else the repository's ``tasks/glue``."""
    packaged = Path(__file__).resolve().parent / "cards"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "tasks" / "glue"


def _needs_root(spec: TaskSpec) -> TaskSpec:
    """The card's task, but loading from files without a data root is an error, not a guess."""
    load = spec.loader

    def loader(split: str, ctx: LoadContext) -> datasets.Dataset:
        from_files = ctx.options.get("source", "files") == "files"
        if from_files and ctx.data_dir is None and not os.environ.get(ROOT_ENV):
            raise DataError(f"GLUE data not found for task {spec.name!r}: pass --data DIR or set {ROOT_ENV}")
        return load(split, ctx)

    return dataclasses.replace(spec, loader=loader)


@hookimpl
def register_tasks(register: Register) -> None:
    for spec in load_cards(cards_dir()):
        register(_needs_root(spec))

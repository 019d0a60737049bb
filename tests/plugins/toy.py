"""A fixture plugin, loaded as a real module: three tiny tasks on generated text.

``toy.colour`` and ``toy.size`` label the same inputs (input_group "toy"); ``toy.score`` is
a regression task on its own inputs. The labels follow from words in the text, so a tiny
model learns them in a few epochs.
"""

from __future__ import annotations

import random

from harness import LoadContext, TaskSpec, hookimpl

COLOURS = ["red", "green", "blue"]
SIZES = ["small", "large"]
NOUNS = ["box", "ball", "car", "cup", "hat", "shoe"]
ROWS = {"train": 192, "dev": 64, "test": 64}
EVENTS: list[tuple[str, str]] = []  # observer calls, for the tests


def _rows(split: str, seed: int) -> dict[str, list]:
    rng = random.Random(f"{split}-{seed}")
    out: dict[str, list] = {"text": [], "colour": [], "size": [], "score": []}
    for _ in range(ROWS[split]):
        c, s = rng.randrange(3), rng.randrange(2)
        out["text"].append(f"a {SIZES[s]} {COLOURS[c]} {rng.choice(NOUNS)} {rng.choice(NOUNS)}")
        out["colour"].append(c)
        out["size"].append(s)
        out["score"].append(float(c + 2 * s))
    return out


def load(split: str, ctx: LoadContext):
    import datasets

    return datasets.Dataset.from_dict(_rows(split, ctx.seed))


@hookimpl
def register_tasks(register):
    common = {"text_fields": ("text",), "loader": load, "splits": ("train", "dev", "test")}
    register(
        TaskSpec(
            "toy.colour",
            "single_label_classification",
            labels=tuple(COLOURS),
            metrics=("accuracy",),
            label_column="colour",
            input_group="toy",
            **common,
        )
    )
    register(
        TaskSpec(
            "toy.size",
            "single_label_classification",
            labels=tuple(SIZES),
            metrics=("f1_macro", "accuracy"),
            label_column="size",
            input_group="toy",
            **common,
        )
    )
    register(TaskSpec("toy.score", "regression", metrics=("pearson", "mse"), label_column="score", **common))


@hookimpl
def run_started(run_dir, config, tasks):
    EVENTS.append(("started", run_dir))


@hookimpl
def run_finished(run_dir, results):
    EVENTS.append(("finished", run_dir))

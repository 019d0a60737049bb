"""A fixture plugin whose splits do not divide into batches, with missing labels and no test labels.

``uneven.reg`` (regression, 30 train / 13 dev / 11 test rows, some unlabelled) stands alone;
``uneven.a`` and ``uneven.b`` label the same 30/13/11 rows (input_group "pair") with opposite
labels, some rows unannotated in one task only; ``uneven.notest`` declares no test split.
``--data-option unlabelled=TASK`` removes every train label of TASK (for the refusal test).
"""

from __future__ import annotations

import math
import random

from harness import MISSING_LABEL, LoadContext, TaskSpec, hookimpl

ROWS = {"train": 30, "dev": 13, "test": 11}
WORDS = ["red", "blue"]
NOUNS = ["box", "ball", "car", "cup", "hat", "shoe", "pen"]


def _rows(split: str, seed: int, unlabelled: str) -> dict[str, list]:
    rng = random.Random(f"uneven-{split}-{seed}")
    out: dict[str, list] = {"text": [], "a": [], "b": [], "value": []}
    for i in range(ROWS[split]):
        w = rng.randrange(2)
        out["text"].append(f"the {WORDS[w]} {rng.choice(NOUNS)} number {i % 5}")
        out["a"].append(MISSING_LABEL if i % 7 == 3 else w)
        out["b"].append(MISSING_LABEL if i % 5 == 1 else 1 - w)
        out["value"].append(math.nan if i % 6 == 2 else w + rng.uniform(-0.3, 0.3))
    if split == "train" and unlabelled:
        column = {"uneven.a": "a", "uneven.b": "b"}[unlabelled]
        out[column] = [MISSING_LABEL] * len(out[column])
    return out


def load(split: str, ctx: LoadContext):
    import datasets

    return datasets.Dataset.from_dict(_rows(split, ctx.seed, ctx.options.get("unlabelled", "")))


@hookimpl
def register_tasks(register):
    splits = ("train", "dev", "test")
    register(TaskSpec("uneven.reg", "regression", ("text",), load, ("pearson", "mse"), (), splits, "value"))
    for name, column in (("uneven.a", "a"), ("uneven.b", "b")):
        register(
            TaskSpec(
                name,
                "single_label_classification",
                ("text",),
                load,
                ("accuracy",),
                ("no", "yes"),
                splits,
                column,
                "pair",
            )
        )
    register(
        TaskSpec(
            "uneven.notest",
            "single_label_classification",
            ("text",),
            load,
            ("accuracy",),
            ("no", "yes"),
            ("train", "dev"),
            "a",
        )
    )

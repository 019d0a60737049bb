"""A fixture plugin whose training loss overflows: ``diverging.huge``, a regression task on the
``toy`` rows with targets of about 1e30, whose squared error is +inf in float32 from the first
step (a realistic mistake: unscaled targets). The other toy tasks train normally beside it."""

from __future__ import annotations

import toy

from harness import LoadContext, TaskSpec, hookimpl

SCALE = 1e30


def load(split: str, ctx: LoadContext):
    import datasets

    rows = toy._rows(split, ctx.seed)
    return datasets.Dataset.from_dict({"text": rows["text"], "huge": [SCALE * (1 + v) for v in rows["score"]]})


@hookimpl
def register_tasks(register):
    register(
        TaskSpec(
            "diverging.huge",
            "regression",
            metrics=("mse",),
            label_column="huge",
            text_fields=("text",),
            loader=load,
            splits=("train", "dev", "test"),
        )
    )

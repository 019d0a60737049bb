"""A fixture plugin whose grouper and predictors return what the core must refuse.

- grouper ``nonpartition``: puts the first task in two groups and leaves the others out;
- predictor ``wrongshape``: a [T, T + 1] matrix;
- predictor ``allnan``: NaN for every pair.

The predictors need only ``train_sizes`` (the data check), so a run with ``--stages stl`` reaches them.
"""

from __future__ import annotations

import numpy as np

from harness import Grouper, Predictor, hookimpl


@hookimpl
def register_groupers(register):
    register(Grouper("nonpartition", lambda tasks, ctx: [[tasks[0].name], [tasks[0].name]]))


@hookimpl
def register_predictors(register):
    register(Predictor("wrongshape", lambda tasks, art: np.zeros((len(tasks), len(tasks) + 1)), needs=("train_sizes",)))
    register(Predictor("allnan", lambda tasks, art: np.full((len(tasks), len(tasks)), np.nan), needs=("train_sizes",)))

"""Training one job on accelerate: model (encoder + heads), runner (epochs, evaluation,
resume), task sampling, multi-label thresholds, progress, and the step-observer protocol."""

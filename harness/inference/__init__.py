"""Inference with a trained job's saved model: ``harness predict``.

``records`` reads an input file one record at a time (and holds the built-in ``rows`` input
reader); ``jobs`` finds the saved models of a run directory; ``engine`` turns records into
predictions with one model, a batch at a time; ``output`` writes them as JSONL or CSV,
atomically. The saved-model format itself is ``harness.training.saved``.
"""

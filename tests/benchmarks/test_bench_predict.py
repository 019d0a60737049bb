"""Benchmarks of serving: one MTL model against T STL models over the same spine snippets, and
the peak memory of ``harness predict`` on 10,000 snippets.

The serving cost the paper is about: an MTL model with one head per pathology answers every
pathology of a snippet from one encoder pass; T STL models need T passes. Both arms run the
saved-model inference path of ``harness predict`` (``harness.training.saved.load_saved`` and
``harness.inference.engine.head_logits``) over the same snippets, alternating round by round
(the ``ratio`` fixture), so load from other processes hits both; the recorded figure is the
ratio of their throughputs. The peak resident memory of ``harness predict`` goes to the
table's figures. Models are random-init (cost does not depend on the weights): the tiny
preset, and MiniLM with ``HARNESS_BENCH_MINILM=1`` (``SNIPPETS`` per round: 512 for tiny, 96
for MiniLM). Run with ``tox -e bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.api import LoadContext, TaskSpec
from harness.core.config import resolve
from harness.core.plugins import build_registries, new_manager
from harness.training.model import HeadSpec, build_model
from tests.benchmarks.conftest import minilm_enabled

ROUNDS = 5
BATCH = 64
SNIPPETS = {"tiny": 512, "minilm": 96}  # per round and arm
MODELS = [
    "tiny",
    pytest.param("minilm", marks=pytest.mark.skipif(not minilm_enabled(), reason="opt-in: HARNESS_BENCH_MINILM=1")),
]
ROOT = Path(__file__).resolve().parents[2]


def _cervical_tasks() -> list[TaskSpec]:
    registries = build_registries(new_manager(load=["spine"], autoload=False))
    return [e.value for e in registries.tasks if e.name.startswith("cervical.")]


def _saved(tasks: Sequence[TaskSpec], folder: Path, kind: str, seed: int = 0, model_name: str = "tiny") -> Path:
    """A random-init model of ``tasks`` saved as ``harness run`` saves a job's best epoch."""
    import torch
    from accelerate import Accelerator

    from harness.training.saved import model_info, save_best

    cfg = resolve("smoke")
    torch.manual_seed(seed)
    model, _ = build_model(model_name, [HeadSpec.of(t) for t in tasks], cfg.pooling, 0.0)
    record = {"epoch": 1, "selection": 0.0}
    info = model_info(tasks, cfg, job=folder.parent.name, kind=kind, seed=seed, record=record)
    save_best(Accelerator(cpu=True), model, folder, info)
    return folder


def _snippets(n: int) -> list[str]:
    from harness_spine.corpus import load_region

    rows = load_region("cervical", LoadContext(profile="default"))
    texts = [t for split in ("train", "dev", "test") for t in rows[split]["text"]]
    return (texts * (n // len(texts) + 1))[:n]


@pytest.mark.benchmark(group="predict-serving")
@pytest.mark.parametrize("model", MODELS)
def test_one_mtl_model_serves_the_snippets_of_t_stl_models(ratio, bench_threads, tmp_path, model):
    from harness.inference.engine import head_logits
    from harness.training.saved import load_saved

    tasks = _cervical_tasks()
    mtl = load_saved(_saved(tasks, tmp_path / "mtl" / "best", "mtl", 0, model))
    stl = [load_saved(_saved([t], tmp_path / f"stl{i}" / "best", "stl", i, model)) for i, t in enumerate(tasks)]
    snippets = [(t,) for t in _snippets(SNIPPETS[model])]

    def serve(models: Sequence[Any]) -> None:
        for loaded in models:
            names = [h.task for h in loaded.info.heads]
            for start in range(0, len(snippets), BATCH):
                head_logits(loaded, snippets[start : start + BATCH], names)

    ratio.measure(
        f"serving throughput {model}: one MTL model / {len(tasks)} STL models",
        lambda: serve([mtl]),
        lambda: serve(stl),
        rounds=ROUNDS,
        target=len(tasks) / 2,  # one encoder pass instead of T: the heads are a rounding error
        direction=">=",
        work=len(snippets),
        unit="snippets/s",
        labels=("one MTL model", f"{len(tasks)} STL models"),
        setup={
            "model": model,
            "tasks": len(tasks),
            "snippets": len(snippets),
            "batch": BATCH,
            "threads": bench_threads,
        },
    )


def _fake_run(root: Path, tasks: Sequence[TaskSpec]) -> Path:
    """A run directory holding one all-task MTL job whose best/ is a random-init model (what
    ``harness predict`` reads: config.json, the job's result.json and best/)."""
    key = "mtl-0-16tasks-bench"
    job = root / "jobs" / key
    _saved(tasks, job / "best", "mtl")
    (job / "result.json").write_text(json.dumps({"kind": "mtl", "tasks": [t.name for t in tasks], "seed": 0}))
    config = {"config": {"seed": 0, "keep_best": True}, "group": [t.name for t in tasks]}
    (root / "config.json").write_text(json.dumps(config))
    return root


def _reports(path: Path, snippets: int) -> int:
    """Synthetic reports of both regions, alternating, up to ``snippets`` level snippets; how many."""
    from harness_spine.generator import GeneratorConfig, generate
    from harness_spine.segmenter import segment

    corpus = generate(GeneratorConfig(reports=snippets // 9 + 50, seed=11))  # about 5.3 snippets a report
    pairs = zip(corpus.of_region("cervical"), corpus.of_region("lumbar"), strict=True)
    alternating = [s.report for pair in pairs for s in pair]
    count, lines = 0, []
    for report in alternating:
        if count >= snippets:
            break
        count += len(segment(report.text, report.region))
        lines.append(json.dumps({"report_id": report.report_id, "region": report.region, "text": report.text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return count


def _peak_rss_mib(run: Path, reports: Path, output: Path) -> float:
    """Peak resident memory (MiB) of one ``harness predict`` process, read inside it (``peak_rss_mb``: VmHWM)."""
    code = (
        "import sys\n"
        "from harness.cli import main\n"
        f"code = main(['predict', {str(run)!r}, '--input', {str(reports)!r}, '--output', {str(output)!r}])\n"
        "from harness.protocol.execute import peak_rss_mb\n"
        "print('peak_rss_mib', peak_rss_mb(), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("peak_rss_mib")))


@pytest.mark.benchmark(group="predict-memory")
def test_predict_memory_does_not_grow_with_the_input(ratio, tmp_path):
    registries = build_registries(new_manager(load=["spine"], autoload=False))
    tasks = [e.value for e in registries.tasks]  # all 16 pathology heads, both regions
    run = _fake_run(tmp_path / "run", tasks)
    small, large = _reports(tmp_path / "small.jsonl", 1_000), _reports(tmp_path / "large.jsonl", 10_000)

    def measure() -> tuple[float, float]:
        return (
            _peak_rss_mib(run, tmp_path / "small.jsonl", tmp_path / "small.out.jsonl"),
            _peak_rss_mib(run, tmp_path / "large.jsonl", tmp_path / "large.out.jsonl"),
        )

    small_mib, large_mib = ratio.once(measure)
    for snippets, mib, name in ((small, small_mib, "small"), (large, large_mib, "large")):
        rows = sum(1 for _ in open(tmp_path / f"{name}.out.jsonl", encoding="utf-8"))
        setup = {"model": "tiny", "heads": len(tasks), "prediction_rows": rows}
        # streamed: ten times the input must not cost anything near ten times the memory
        limit = None if name == "small" else round(1.5 * small_mib)
        ratio.figure(f"harness predict peak RSS, {snippets:,} snippets", mib, "MiB", limit=limit, setup=setup)

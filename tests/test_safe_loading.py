"""Nothing untrusted is unpickled or evaluated: a source scan (ast) and tampered files on disk.

The scan covers ``harness/`` and every first-party plugin's package. A resume state and a saved
model folder with a planted pickle (one whose ``__reduce__`` would create a marker file) are
refused with one line, and the marker is never created.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "harness", *sorted(p for p in (ROOT / "plugins").glob("*/harness_*") if p.is_dir())]
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib"}


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    """``a.b.c`` of a call's function, its first name resolved through the module's imports; "" otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is(value: ast.expr | None, constant: object) -> bool:
    return isinstance(value, ast.Constant) and value.value is constant


def unsafe_calls(source: str) -> list[str]:
    """``line: what`` for every call in ``source`` that could run code from data it loads."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:  # `import a.b` binds a; `import a.b as c` binds c to a.b
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        module, _, attr = name.rpartition(".")
        problem = ""
        if module.split(".")[0] in UNPICKLERS and attr in ("load", "loads", "Unpickler"):
            problem = f"{name}: unpickles"
        elif name in ("marshal.load", "marshal.loads", "shelve.open", "pandas.read_pickle", "numpy.load") and (
            name != "numpy.load" or not _is(_keyword(node, "allow_pickle") or ast.Constant(False), False)
        ):
            problem = f"{name}: unpickles" + (" (allow_pickle)" if name == "numpy.load" else "")
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            safe = loader is not None and _dotted(loader, aliases) in ("yaml.SafeLoader", "yaml.CSafeLoader")
            problem = "" if safe and attr in ("load", "load_all") else f"{name}: not a safe loader"
        elif isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec") and node.func.id not in aliases:
            problem = f"{node.func.id}()"
        elif name == "torch.load" and not _is(_keyword(node, "weights_only"), True):
            problem = "torch.load without weights_only=True"
        elif name.endswith("register_for_checkpointing"):
            problem = "accelerate loads registered checkpoints with weights_only=False"
        elif name in ("os.system", "os.popen"):
            problem = f"{name}: a shell"
        elif module == "subprocess" and _keyword(node, "shell") is not None and not _is(_keyword(node, "shell"), False):
            problem = f"{name} with shell=True"
        value = _keyword(node, "trust_remote_code")
        if value is not None and not _is(value, False):
            problem = "trust_remote_code=True"
        if problem:
            found.append(f"{node.lineno}: {problem}")
    return found


BAD = {
    "pickle": "import pickle\npickle.loads(b'')",
    "pickle alias": "import pickle as p\np.load(f)",
    "from pickle": "from pickle import loads\nloads(b'')",
    "unpickler": "import _pickle\n_pickle.Unpickler(f).load()",
    "dill": "import dill\ndill.load(f)",
    "marshal": "import marshal\nmarshal.loads(b'')",
    "shelve": "import shelve\nshelve.open('x')",
    "yaml.load": "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "yaml.load bare": "import yaml\nyaml.load(text)",
    "yaml.unsafe_load": "import yaml\nyaml.unsafe_load(text)",
    "eval": "eval('1')",
    "exec": "exec('x = 1')",
    "torch.load": "import torch\ntorch.load(f)",
    "torch.load unsafe": "import torch\ntorch.load(f, weights_only=False)",
    "np.load pickle": "import numpy as np\nnp.load(f, allow_pickle=True)",
    "read_pickle": "import pandas as pd\npd.read_pickle(f)",
    "remote code": "from transformers import AutoModel\nAutoModel.from_pretrained(p, trust_remote_code=True)",
    "remote code variable": "AutoTokenizer.from_pretrained(p, trust_remote_code=flag)",
    "shell": "import subprocess\nsubprocess.run(cmd, shell=True)",
    "os.system": "import os\nos.system(cmd)",
    "custom checkpoint": "acc.register_for_checkpointing(obj)",
}
GOOD = {
    "safe yaml": "import yaml\nyaml.safe_load(text)\nyaml.load(text, Loader=yaml.SafeLoader)",
    "weights only": "import torch\ntorch.load(f, weights_only=True)",
    "np.load": "import numpy as np\nnp.load(f)\nnp.load(f, allow_pickle=False)",
    "model.eval": "model.eval()\nnet.train().eval()",
    "json": "import json\njson.loads(text)",
    "subprocess": "import subprocess\nsubprocess.run(['ls'], shell=False)\nsubprocess.run(['ls'])",
    "no remote code": "AutoModel.from_pretrained(p, trust_remote_code=False)",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_scan_finds_each_unsafe_call(case):
    assert len(unsafe_calls(BAD[case])) == 1, case


@pytest.mark.parametrize("case", sorted(GOOD))
def test_the_scan_passes_safe_calls(case):
    assert unsafe_calls(GOOD[case]) == []


def test_no_unsafe_loading_or_evaluation_in_the_product():
    files = [f for folder in SOURCES for f in sorted(folder.rglob("*.py"))]
    assert len(files) > 80 and any("harness_spine" in str(f) for f in files)
    found = [f"{f.relative_to(ROOT)}:{hit}" for f in files for hit in unsafe_calls(f.read_text(encoding="utf-8"))]
    assert found == []


def test_config_and_task_files_are_read_with_tomllib_and_json_only():
    readers = set()
    for folder in SOURCES:
        for file in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    readers |= {n.split(".")[0] for n in names}
    assert "tomllib" in readers and "json" in readers
    # pickle is imported for its exception class: its calls are the scan's business
    assert not readers & {"yaml", "ruamel", "toml", "tomli", "configparser", "dill", "marshal", "shelve"}


class _Marker:
    """Unpickling this creates ``path``: what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (str(self.path),))


def _malicious(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"state": _Marker(marker)}))


# -- the resume state --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_resume_state_with_a_planted_pickle_is_refused_and_never_unpickled(tmp_path, monkeypatch, capsys):
    from harness.training import runner

    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    save = runner.save_state

    class Killed(Exception):
        pass

    def kill_after_saving(*args, **kwargs):
        save(*args, **kwargs)
        raise Killed("killed after epoch 1")

    monkeypatch.setattr(runner, "save_state", kill_after_saving)
    run = tmp_path / "run"
    argv = ["run", "--tasks", "toy.colour,toy.size", "--stages", "stl", "--profile", "smoke", "--output", str(run)]
    argv += ["--set", "epochs=2", "--set", "state_every_minutes=0"]
    assert main(argv) != 0
    monkeypatch.setattr(runner, "save_state", save)
    state = sorted(run.glob("jobs/*/state"))[0]
    files = sorted(p.name for p in state.iterdir())
    pickles = [name for name in files if name.endswith((".bin", ".pkl"))]
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= set(pickles), files
    pristine = tmp_path / "pristine"
    shutil.copytree(state, pristine)
    capsys.readouterr()
    for name in [*pickles, "custom_checkpoint_0.pkl"]:  # the last one accelerate reads with weights_only=False
        marker = tmp_path / f"unpickled-{name}"
        _malicious(state / name, marker)
        assert main([*argv, "--resume"]) != 0
        err = capsys.readouterr().err
        assert not marker.exists(), name
        (line,) = [line for line in err.splitlines() if line.startswith("error:")]
        assert f"cannot resume from {state}: {name} holds Python objects that a weights-only load refuses" in err
        assert "Traceback" not in err and "weights_only=False" not in err
        error = json.loads((state.parent / "error.json").read_text())["error"]
        assert f"{name} holds Python objects" in error and "\n" not in error
        (state / name).unlink()
        if (pristine / name).exists():
            shutil.copy2(pristine / name, state / name)
    assert main([*argv, "--resume"]) == 0  # the untouched state resumes: the refusals above were the planted files
    assert set(json.loads((run / "results.json").read_text())["tasks"]) == {"toy.colour", "toy.size"}


def test_a_state_file_that_is_not_a_torch_file_is_one_line(tmp_path):
    from harness.errors import RunError
    from harness.training.resume import check_pickles

    (tmp_path / "optimizer.bin").write_bytes(b"\x80\x04truncated")
    with pytest.raises(RunError, match=r"optimizer.bin cannot be read \(\w+Error: .*\); delete that folder") as info:
        check_pickles(tmp_path)
    assert "\n" not in str(info.value)


# -- a saved model folder -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_saved_model_with_a_planted_pickle_is_never_unpickled(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    run = tmp_path / "run"
    argv = ["run", "--tasks", "toy.colour,toy.size", "--stages", "stl", "--profile", "smoke", "--set", "epochs=1"]
    assert main([*argv, "--output", str(run)]) == 0
    folders = sorted(run.glob("jobs/*/best"))
    marker = tmp_path / "unpickled"
    for best in folders:
        (best / "model.safetensors").unlink()
        for name in ("pytorch_model.bin", "training_args.bin", "model.pt"):
            _malicious(best / name, marker)
    records = tmp_path / "input.jsonl"
    records.write_text(json.dumps({"text": "a red thing"}) + "\n")
    capsys.readouterr()
    code = main(["predict", str(run), "--input", str(records), "--job", "stl"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert f"{folders[0]}: the saved model cannot be loaded" in err and "Traceback" not in err
    from harness.training.saved import load_weights

    with pytest.raises(Exception):  # noqa: B017 -- whatever the error, nothing is unpickled
        load_weights(object(), folders[0])
    assert not marker.exists()

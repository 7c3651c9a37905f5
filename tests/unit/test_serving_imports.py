"""`coe/` (serving) never imports `router_training/` (training): `coe train-router` is a plugin command
(entry-point group ``coe.commands``), and the CLI catches training errors through `UserInputError`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from coe.cli.errors import UsageError, fail_cleanly
from coe.errors import UserInputError

COE = Path(__file__).resolve().parents[2] / "coe"


def _imports_router_training(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):  # every import, also the ones inside functions
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "router_training" or name.startswith("router_training.")]
    return sorted(found)


def test_no_module_under_coe_imports_router_training() -> None:
    files = sorted(COE.rglob("*.py"))
    assert files, f"no Python files under {COE}"
    offenders = [f"{path.relative_to(COE.parent)}:{line}: imports {name}"
                 for path in files for line, name in _imports_router_training(ast.parse(path.read_text(), str(path)))]
    assert not offenders, "coe/ must not import router_training/:\n" + "\n".join(offenders)


def test_loading_the_cli_imports_no_training_code() -> None:
    # The plugin module router_training.cli is loaded (it defines the command); nothing behind it is.
    code = ("import sys, coe.cli.main as m; "
            "print(sorted(x for x in sys.modules if x.startswith('router_training') or x.split('.')[0] in ('sklearn', 'torch'))); "
            "print(sorted(c.name for c in m.app.registered_commands if c.name))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    loaded, commands = out.splitlines()
    assert ast.literal_eval(loaded) == ["router_training", "router_training.cli"]
    assert "train-router" in ast.literal_eval(commands), "entry point coe.commands:train-router not installed (pip install -e .)"


def _training_errors() -> list[tuple[type[Exception], type[Exception]]]:
    from router_training.classifiers import UnknownClassifier
    from router_training.data import DataFileError, DataPackageMissing
    from router_training.embedders import UnknownEmbedder
    from evals.scorers import UnknownScorerError

    return [(UnknownClassifier, KeyError), (UnknownEmbedder, KeyError), (DataFileError, ValueError),
            (DataPackageMissing, RuntimeError), (UnknownScorerError, ValueError)]


@pytest.mark.parametrize("error, base", _training_errors(), ids=lambda c: c.__name__)
def test_training_errors_are_user_input_errors_and_keep_their_base(error: type[Exception], base: type[Exception], capsys) -> None:
    assert issubclass(error, UserInputError) and issubclass(error, base)
    with pytest.raises(typer.Exit) as info, fail_cleanly():
        raise error("no embedder 'nope'; registered: minilm, static")
    assert info.value.exit_code == 2
    assert capsys.readouterr().err.strip() == "error: no embedder 'nope'; registered: minilm, static"


def test_usage_error_is_a_user_input_error() -> None:
    assert issubclass(UsageError, UserInputError)


def test_without_the_entry_point_the_cli_still_works() -> None:
    # An install without the coe.commands metadata: `coe --help` works, train-router is just absent.
    code = ("import importlib.metadata as md; md.distributions = lambda **kw: iter(()); "
            "import sys; sys.argv = ['coe', '--help']; from coe.cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "route" in proc.stdout and "train-router" not in proc.stdout

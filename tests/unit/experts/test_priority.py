"""The engine's processes start at the configured nice value, and the launching thread gets its own back.

Run in fresh interpreters (real processes, real setpriority): nice is per thread and inherited, so
changing it in the test runner would leak into every later test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from coe.config.experts import EngineOptions



def run_script(body: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
    """Runs `body` in a new interpreter that starts at nice 15, as a Ray worker does."""
    script = textwrap.dedent(
        f"""
        import logging, os, subprocess, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from coe.experts.priority import started_at_nice, thread_nice  # before setuid: the checkout may be private
        if {as_nobody!r}:
            os.setuid(65534)  # no CAP_SYS_NICE: lowering the nice value is refused
        os.setpriority(os.PRIO_PROCESS, 0, 15)
        def child_nice():
            return int(subprocess.run(["nice"], capture_output=True, text=True, check=True).stdout)  # prints its own
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def can_lower_nice() -> bool:
    return os.geteuid() == 0


@pytest.mark.skipif(not can_lower_nice(), reason="lowering a nice value needs root (CI runs as root)")
def test_processes_started_inside_get_the_nice_value_and_the_thread_gets_its_own_back():
    result = run_script(
        """
        print(child_nice())
        with started_at_nice(0, "expert 'x'") as got:
            print(got, child_nice())
        print(thread_nice(), child_nice())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["15", "0", "0", "15", "15"]


def test_refused_lowering_keeps_the_callers_priority_and_says_how_to_allow_it():
    result = run_script(
        """
        with started_at_nice(0, "expert 'x'") as got:
            print(got, child_nice())
        print(thread_nice())
        """,
        as_nobody=can_lower_nice(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["15", "15", "15"]
    assert "expert 'x': cannot set its processes to nice 0 (from 15)" in result.stderr
    assert "CAP_SYS_NICE" in result.stderr


def test_none_leaves_the_priority_alone():
    result = run_script(
        """
        with started_at_nice(None, "expert 'x'") as got:
            print(got, child_nice())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["15", "15"]
    assert result.stderr == ""


def test_engine_nice_defaults_to_a_shells_priority_and_is_bounded():
    assert EngineOptions().nice == 0
    assert EngineOptions(nice=None).nice is None
    with pytest.raises(ValueError):
        EngineOptions(nice=20)

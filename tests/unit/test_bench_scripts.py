"""Every benchmark script under bench/ starts: its imports resolve and its command line parses.

The benches run for minutes against real servers, so CI does not run them; a renamed helper in one
bench (bench/hop_profile.py importing a function vllm_side_by_side.py no longer had) then only shows
when somebody runs it. `--help` imports the script as a user's run would and stops before any work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())  # not helpers


def test_bench_folder_has_scripts() -> None:
    assert "vllm_side_by_side.py" in SCRIPTS and "hop_profile.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_help(script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                          cwd=BENCH.parent, timeout=120)
    assert done.returncode == 0, f"bench/{script} --help exited {done.returncode}:\n{done.stderr[-2000:]}"
    assert "usage:" in done.stdout


def test_an_arms_config_differs_from_plain_coe_only_in_what_it_names(tmp_path: Path, monkeypatch) -> None:
    # Every CoE arm runs without the access log, as vLLM's server runs with --disable-uvicorn-access-log;
    # an arm that changes another `server` setting must keep that one.
    import yaml

    monkeypatch.syspath_prepend(str(BENCH))
    from bench_servers import config_variant, settings_variant

    plain = {"server": {"access_log": False}, "experts": [{"id": "x", "engine": {"nice": 5, "dtype": "bfloat16"}}]}
    (tmp_path / "coe.yaml").write_text(yaml.safe_dump(plain))
    proxy = yaml.safe_load(config_variant(tmp_path, "proxy.yaml", server={"direct_ingress": False}).read_text())
    assert proxy == {**plain, "server": {"access_log": False, "direct_ingress": False}}
    variant = yaml.safe_load(settings_variant(tmp_path, {"nice": "null"}, {"access_log": "true"}).read_text())
    assert variant == {"server": {"access_log": True}, "experts": [{"id": "x", "engine": {"nice": None, "dtype": "bfloat16"}}]}

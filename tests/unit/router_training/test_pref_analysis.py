"""A small real run of the routing analysis on the AlpacaEval matrix (the real CSV, real MiniLM).

The MiniLM embeddings are cached in CoE's cache folder: the first run encodes 797 prompts (~30 s on
2 cores), later runs read the .npy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training import pref_analysis as pa


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    # CoE's own cache (COE_CACHE_DIR): survives pytest's -p no:cacheprovider, fresh in CI.
    from coe.paths import cache_subdir

    return cache_subdir("test-embeddings")


@pytest.fixture(scope="module")
def report(cache_dir: Path) -> dict:
    return pa.run_analysis(pa.DEFAULT_CSV, seeds=(0, 1), k_list=(1, None), cache_dir=cache_dir)


def test_vendored_matrix_is_the_documented_file() -> None:
    import hashlib

    readme = (pa.DEFAULT_CSV.parent / "README.md").read_text()
    assert hashlib.sha256(pa.DEFAULT_CSV.read_bytes()).hexdigest() in readme


def test_matrix_drops_adversarial_and_reference_columns() -> None:
    data = pa.load_pref_matrix(pa.DEFAULT_CSV)
    assert data.scores.shape == (797, 55)
    assert not set(pa.DROPPED_MODELS) & set(data.models)
    assert np.nanmin(data.scores) >= 1.0 and np.nanmax(data.scores) <= 2.0


def test_split_is_disjoint_complete_and_stratified() -> None:
    tags = pa.load_pref_matrix(pa.DEFAULT_CSV).datasets
    train, test = pa.stratified_split(tags, seed=3, test_frac=0.4)
    assert not set(train) & set(test) and len(train) + len(test) == len(tags)
    assert set(tags[train]) == set(tags[test]) == set(tags)


def test_oracle_bounds_every_router_and_headroom_is_finite(report: dict) -> None:
    assert set(report["sets"]) == set(pa.SET_NAMES)
    for res in report["sets"].values():
        assert len(res["per_seed"]) == 2
        for seed in res["per_seed"]:
            scores = seed["scores"]
            assert len(seed["experts"]) == pa.SET_SIZE
            assert scores["oracle"] >= scores["best single (train)"] >= 1.0
            assert scores["oracle"] > scores["random"]
            for name, value in scores.items():
                assert scores["oracle"] >= value - 1e-12, name
        for name, r in res["routers"].items():
            assert np.isfinite(r["headroom_share"]["mean"]), name
        assert res["routers"]["oracle"]["headroom_share"]["mean"] == pytest.approx(1.0)
        assert "category:cluster K=all" in res["routers"] and "regress:ridge +gate" in res["routers"]


def test_recommendation_falls_back_to_best_single_unless_a_router_always_wins(report: dict) -> None:
    for res in report["sets"].values():
        rec = res["recommendation"]["choice"]
        if rec != "best single (train)":
            assert res["routers"][rec]["delta_vs_best_single"]["p2_5"] > 0


def test_cli_writes_json_and_markdown(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COE_CACHE_DIR", str(cache_dir))
    assert pa.main(["--out", str(tmp_path), "--seeds", "1", "--k", "3,all", "--sets", "complementary"]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert list(data["sets"]) == ["complementary"] and data["config"]["k_list"] == ["3", "all"]
    md = (tmp_path / "report.md").read_text()
    assert "| oracle |" in md and "Recommendation:" in md and md in capsys.readouterr().out
    assert not list(tmp_path.glob("*.npy"))  # the cache went to COE_CACHE_DIR, not the report folder

"""The leaderboard from run folders: markdown table, HTML page, plots; the page is opened in headless
Chromium (Debian's `chromium` package; `make test` installs it) and must render with every plot decoded.

The run folders are built with the harness's own report code from constructed answers and judgments
(the end-to-end tests make real ones; here the numbers must be known to check the table).
"""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evals import leaderboard, mt_bench
from evals.data import load_mt_bench, round_robin_subset
from evals.store import JsonlStore

PARAMS = {"small": 100e6, "large": 300e6}


def make_run(root: Path, name: str, expert: str, rating: int, latency: float) -> Path:
    folder = root / "mt-bench" / name
    questions = round_robin_subset(load_mt_bench(), lambda q: q.category, 8)
    answers = JsonlStore(folder / "answers.jsonl", key=lambda r: (r["question_id"], r["turn"]))
    judgments = JsonlStore(folder / "judgments.jsonl", key=lambda r: (r["question_id"], r["turn"]))
    for q in questions:
        for turn in (1, 2):
            answers.add({"question_id": q.question_id, "turn": turn, "category": q.category, "text": "answer",
                         "expert": expert, "route_category": None, "latency_s": latency, "prompt_tokens": 20,
                         "completion_tokens": 10, "error": None})
            # one malformed judgment per run: counted as invalid, not scored
            text = "no rating here" if (q.category, turn) == ("math", 2) else f"Fine. Rating: [[{rating}]]"
            judgments.add({"question_id": q.question_id, "turn": turn, "category": q.category, "judge": "openai/judge",
                           "judgment": text, "error": None})
    manifest = {"run": name, "arrangement": {"evaluated": expert, "router_version": None, "experts": [{"id": expert}]},
                "judge": {"model": "openai/judge"}, "git": {"commit": "0123456789abcdef"}}
    report = mt_bench.build_report(questions, answers, judgments, manifest, PARAMS)
    report.pop("per_prompt")
    (folder / "results.json").write_text(json.dumps(report))
    return folder


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.imgs = 0, []

    def handle_starttag(self, tag, attrs):
        self.rows += tag == "tr"
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


@pytest.fixture
def board(tmp_path):
    make_run(tmp_path, "run-small", "small", rating=4, latency=0.5)
    make_run(tmp_path, "run-large", "large", rating=7, latency=2.0)
    return tmp_path, *leaderboard.write(tmp_path)


def test_report_scores_and_counts_invalid(tmp_path):
    folder = make_run(tmp_path, "r", "small", rating=6, latency=1.0)
    results = json.loads((folder / "results.json").read_text())
    assert results["score"] == 6.0 and results["judgments"] == {
        "total": 16, "valid": 15, "invalid": 1, "invalid_reasons": {"no_rating": 1}, "hit_judge_token_limit": None}
    assert results["per_category"]["math"] == {"score": 6.0, "valid": 1, "judgments": 2}
    assert results["routing"]["mean_active_params"] == 100e6


def test_markdown_table_orders_by_score(board):
    _, md, _ = board
    lines = [l for l in md.splitlines() if l.startswith("| mt-bench")]
    assert "large" in lines[0] and "7.00" in lines[0] and "300.0 M" in lines[0] and "15/16" in lines[0]
    assert "small" in lines[1] and "4.00" in lines[1]


def test_html_page_and_plots(board):
    root, _, page = board
    parser = _Tables()
    parser.feed(page.read_text())
    assert parser.rows == 3  # header + two runs
    assert sorted(parser.imgs) == ["mt-bench-categories.png", "mt-bench-latency.png", "mt-bench-params.png"]
    for img in parser.imgs:
        assert (root / img).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_renders_in_headless_chromium(board):
    _, _, page = board
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.fail("Chromium is not installed: `apt-get install chromium` (make test installs it)")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-images="3"' in body and 'data-images-loaded="3"' in body  # every plot decoded
    assert dom.count("<tr>") == 3 and "run-large" in dom


def test_empty_results_root(tmp_path):
    md, page = leaderboard.write(tmp_path)
    assert "No finished runs" in md and page.is_file()


def test_cli_prints_the_table_and_refuses_a_missing_folder(board, tmp_path):
    import sys

    root = board[0]
    ok = subprocess.run([sys.executable, "-m", "coe.cli.main", "leaderboard", "--results", str(root)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "run-large" in ok.stdout and ok.stdout.strip().endswith("leaderboard.html")
    bad = subprocess.run([sys.executable, "-m", "coe.cli.main", "leaderboard", "--results", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in " ".join(bad.stderr.split()) and "Traceback" not in bad.stderr

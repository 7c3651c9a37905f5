"""Arena-Hard v2.0: pairwise judging against a baseline's answers, both orders, Bradley-Terry win rate.

Each prompt is judged twice with the package's judge prompts: game 1 shows the baseline as assistant A
and the evaluated model as B, game 2 swaps them, so a judge that prefers a position cancels out. The
baseline is the package's per-category choice (o3-mini for hard prompts, gemini-2.0-flash for creative
writing) unless ``--baseline`` names another shipped answer set. Verdicts become battles (ties half a
win, ``>>`` verdicts weighted 3, as Arena-Hard does); the score is the Bradley-Terry win rate against
the baseline with a 95% bootstrap interval over prompts, overall and per subcategory.

Answers the endpoint refused (most Arena-Hard prompts do not fit a small local expert's context) and
judgments without exactly one verdict are invalid: counted and reported, never turned into battles.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from evals.bradley_terry import Battle, bootstrap_win_rates
from evals.data import (
    ARENA_HARD_PACKAGE,
    ArenaQuestion,
    arena_hard_baseline_answers,
    arena_hard_judge_settings,
    data_versions,
    load_arena_hard,
    round_robin_subset,
)
from evals.parsing import parse_verdict, verdict_score
from evals.run import RunSettings, open_run, run_stage
from evals.stats import answer_stats, cut_off_judgments as _cut_off, expert_params
from evals.store import JsonlStore

BENCHMARK = "arena-hard"
STRONG_WEIGHT = 3
MODEL = "model"  # the evaluated model's player name in the Bradley-Terry fit
BASELINE = "baseline"


def baseline_for(question: ArenaQuestion, settings: dict[str, dict[str, str]], override: str | None) -> str:
    return override or settings[question.category]["baseline"]


def judge_messages(question: ArenaQuestion, model_answer: str, baseline_answer: str, game: int,
                   template: str, settings: dict[str, dict[str, str]]) -> tuple[str, str]:
    """(system, user) for one game; game 1: A = baseline, B = model; game 2: A = model, B = baseline."""
    a, b = (baseline_answer, model_answer) if game == 1 else (model_answer, baseline_answer)
    return settings[question.category]["system_prompt"], template.format(QUESTION=question.prompt, ANSWER_A=a, ANSWER_B=b)


def run(settings: RunSettings) -> Path:
    questions = round_robin_subset(load_arena_hard(), lambda q: q.subcategory, settings.limit)
    template, judge_settings = arena_hard_judge_settings()
    baselines = {q.uid: baseline_for(q, judge_settings, settings.baseline) for q in questions}
    baseline_answers = {m: arena_hard_baseline_answers(m) for m in sorted(set(baselines.values()))}
    missing = [uid for uid, m in baselines.items() if uid not in baseline_answers[m]]
    questions = [q for q in questions if q.uid not in missing]  # gemini lacks 2 of the 750: say so below

    client = settings.answer_client()
    folder, manifest = open_run(settings, client.models(), data_versions(ARENA_HARD_PACKAGE))
    answers = JsonlStore(folder / "answers.jsonl", key=lambda r: r["uid"])
    judgments = JsonlStore(folder / "judgments.jsonl", key=lambda r: (r["uid"], r["game"]))

    def answer(q: ArenaQuestion) -> None:
        completion = client.complete([{"role": "user", "content": q.prompt}], max_tokens=settings.max_tokens,
                                     temperature=settings.temperature, seed=settings.seed)
        answers.add({"uid": q.uid, "category": q.subcategory, **completion.to_record()})

    run_stage("answering", [lambda q=q: answer(q) for q in questions if q.uid not in answers],
              settings.parallel, settings.quiet)

    judge = settings.judge_client()

    def judge_one(q: ArenaQuestion, game: int) -> None:
        base = baselines[q.uid]
        system, user = judge_messages(q, answers.get(q.uid)["text"], baseline_answers[base][q.uid], game,
                                      template, judge_settings)
        completion = judge(system, user)
        judgments.add({"uid": q.uid, "game": game, "category": q.subcategory, "baseline": base,
                       "judge": judge.model, "judgment": completion.text, "error": completion.error,
                       "judge_tokens": completion.completion_tokens,  # == --judge-max-tokens: cut off
                       "verdict": parse_verdict(completion.text)})

    todo = [(q, g) for q in questions for g in (1, 2)
            if (q.uid, g) not in judgments and not answers.get(q.uid)["error"]]
    run_stage("judging", [lambda q=q, g=g: judge_one(q, g) for q, g in todo], settings.parallel, settings.quiet)

    report = build_report(questions, answers, judgments, manifest, baselines,
                          expert_params(settings.params_config), settings.bootstrap_rounds, settings.seed)
    report["skipped_without_baseline_answer"] = missing
    with (folder / "per_prompt.jsonl").open("w") as handle:
        for row in report.pop("per_prompt"):
            handle.write(json.dumps(row) + "\n")
    (folder / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    return folder


def battles_of(record: dict[str, Any]) -> list[Battle]:
    """The battles one judgment contributes (none when it is invalid)."""
    verdict = parse_verdict(record["judgment"]) if not record.get("error") else None
    if verdict is None:
        return []
    outcome, strong = verdict_score(verdict, model_is_a=record["game"] == 2)
    return [Battle(record["uid"], MODEL, BASELINE, outcome, STRONG_WEIGHT if strong else 1.0)]


def _win_rate(battles: list[Battle], rounds: int, seed: int) -> dict[str, float | None]:
    if not battles:
        return {"win_rate": None, "ci_low": None, "ci_high": None, "battles": 0}
    return {**bootstrap_win_rates(battles, BASELINE, rounds=rounds, seed=seed)[MODEL], "battles": len(battles)}


def build_report(questions: list[ArenaQuestion], answers: JsonlStore, judgments: JsonlStore, manifest: dict[str, Any],
                 baselines: dict[str, str], params: dict[str, float], rounds: int, seed: int) -> dict[str, Any]:
    battles: list[Battle] = []
    by_cat: dict[str, list[Battle]] = defaultdict(list)
    reasons: Counter = Counter()
    per_prompt = []
    for q in questions:
        outcomes = []
        for game in (1, 2):
            record = judgments.get((q.uid, game))
            if record is None:
                reasons["answer_error"] += 1
                continue
            found = battles_of(record)
            if not found:
                reasons["judge_error" if record.get("error") else "no_verdict"] += 1
            battles += found
            by_cat[q.subcategory] += found
            outcomes += [b.outcome for b in found]
        first = answers.get(q.uid) or {}
        per_prompt.append({"prompt_id": f"arena-hard/{q.uid}", "category": q.subcategory,
                           "score": float(np.mean(outcomes)) if outcomes else None,
                           "expert": first.get("expert"), "route_category": first.get("route_category")})
    total = 2 * len(questions)
    valid = total - sum(reasons.values())
    overall = _win_rate(battles, rounds, seed)
    return {
        "benchmark": BENCHMARK,
        "run": manifest["run"],
        "manifest": manifest,
        "questions": len(questions),
        "baselines": dict(sorted(Counter(baselines[q.uid] for q in questions).items())),
        "score": overall["win_rate"],
        "score_scale": "win rate against the baseline (Bradley-Terry, 0-1)",
        "ci95": [overall["ci_low"], overall["ci_high"]],
        "bootstrap_rounds": rounds,
        "per_category": {c: {"score": (r := _win_rate(by_cat[c], rounds, seed))["win_rate"],
                             "ci95": [r["ci_low"], r["ci_high"]], "valid": len(by_cat[c]),
                             "judgments": 2 * sum(q.subcategory == c for q in questions)}
                         for c in sorted({q.subcategory for q in questions})},
        "judgments": {"total": total, "valid": valid, "invalid": total - valid,
                      "invalid_reasons": dict(sorted(reasons.items())),
                      "hit_judge_token_limit": _cut_off(judgments, manifest)},
        **answer_stats([answers.get(q.uid) for q in questions if answers.get(q.uid)], params),
        "per_prompt": per_prompt,
    }

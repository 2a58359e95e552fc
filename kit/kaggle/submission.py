"""Serving a Kaggle competition from a notebook: the ``predict`` function Kaggle calls, the
time policy that keeps the run inside the limit (``cfg.time_policy``: the time bank or the
clamp, ``kit.kaggle.time_bank``), and the loop that hands ``predict`` to Kaggle's evaluation
API (or to the local stand-in, ``kit.kaggle.local_gateway``, off Kaggle).

Guarantees:

- ``predict`` takes what Kaggle's gateway sends: one length-1 Series (polars or pandas) or a
  plain value per CSV column, id and problem first; further columns are accepted and an
  ``answer`` column (``reference.csv``) is logged as the reference, never shown to the model.
- Every call returns a well-formed one-row answer for the id it was given. A problem that
  is empty, huge or not text, a model that fails to load, and any exception while solving
  all give the profile's fallback answer and a log line, because one crashed call loses the
  submission. (An id that is not one value, a broken gateway, does raise.)
- The solver is built once, under a lock, whoever calls first; the load time is charged to
  the time policy like any other time spent.
- A run cannot be lost quietly: ``prepare`` (called before serving) loads the model and
  solves a warm-up problem in an interactive session, raising in the notebook's cell with
  the fix when either fails. In the competition rerun (``KAGGLE_IS_COMPETITION_RERUN``) it
  does nothing: the model loads inside the first call (that call has no deadline, and the
  server must start within 900 s of the notebook's start), a load failure is logged once,
  loudly, and every answer is then the fallback; ``summary`` counts the fallbacks.

Not guaranteed: good answers (a warm-up that votes nothing still passes), or that the
hidden set behaves like the warm-up problem.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from kit.kaggle.competitions import Competition, get_competition
from kit.kaggle.offline import Paths, candidates, find_input, input_not_found, resolve_input
from kit.config import KitConfig, load_config
from kit.solver import Solver
from kit.kaggle.time_bank import make_time_budget

log = logging.getLogger(__name__)

# Held back from the gateway's per-call timeout: cancelling the candidates, the vote and
# the reply take a few seconds after the deadline, the solver's grace timeout at most
# SOLVE_GRACE_S (the timers of a problem: kit/solver.py's docstring).
CALL_MARGIN_S = 60.0
WARMUP_PROBLEM = "What is the remainder when 2^10 is divided by 7?"
# A warm-up long enough to show the loop works, short enough not to eat the run.
WARMUP_LIMIT_S = 300.0
FIXES = ("Fix: attach the model dataset and set MODEL to its folder (or USE_EMBEDDED_MODEL = True); "
         "for an engine error, fit CONFIG / OVERRIDES to this machine (max_model_len, "
         "gpu_memory_utilization, dtype, tensor_parallel_size).")

# Logged once, at CRITICAL, so it stands out of a rerun's log (every answer is then the fallback).
RULE = "=" * 80
LOAD_FAILED = f"\n{RULE}\nTHE MODEL DID NOT LOAD: %s\nEvery answer of this run will be the fallback %r.\n%s\n{RULE}"


class NotReadyError(RuntimeError):
    """The model did not load, or the warm-up problem failed: serving would lose the run."""


def is_competition_rerun() -> bool:
    """Kaggle sets KAGGLE_IS_COMPETITION_RERUN in the scored rerun (its gateway tests it the same way)."""
    return os.getenv("KAGGLE_IS_COMPETITION_RERUN") is not None


class Submission:
    """One competition run: a lazily loaded solver, a time budget (``cfg.time_policy``) and a
    per-problem log."""

    def __init__(self, competition: Competition, cfg: KitConfig, *, started_at: float | None = None,
                 num_problems: int | None = None, time_limit_s: float | None = None,
                 safety_margin_s: float | None = None, log_path: str | Path | None = None,
                 solver_factory: Callable[[KitConfig], object] | None = None):
        """``started_at``: ``time.monotonic()`` read in the notebook's first cell. The other
        arguments override the competition's figures (for rehearsals and tests)."""
        self.competition = competition
        self.cfg = cfg
        self.profile = cfg.answer_profile()
        limit = competition.time_limit_s if time_limit_s is None else time_limit_s
        # A rehearsal with a short limit keeps a tenth of it back rather than the full margin.
        margin = min(competition.safety_margin_s, 0.1 * limit) if safety_margin_s is None else safety_margin_s
        per_call = None
        if competition.response_timeout_s is not None:
            per_call = competition.response_timeout_s - CALL_MARGIN_S
        self.bank = make_time_budget(
            cfg.time_policy,
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
        self._load_lock = threading.Lock()
        self.records: list[dict] = []  # one per problem, as written to the log

    @classmethod
    def for_competition(cls, name: str, *, model: Paths = "", use_embedded_model: bool = False, config: str = "",
                        overrides: dict | None = None, **kwargs) -> Submission:
        """The competition's profile and config (or ``config``), with ``overrides`` applied;
        the answer rule is always the competition's. ``model`` is a model folder, or the folders
        Kaggle may mount it at (the first that exists is used); when none exists and
        ``use_embedded_model`` is set, the embedded SmolLM2 stands in."""
        competition = get_competition(name)
        chosen = choose_model(model, use_embedded_model)
        # A stand-in model keeps the competition's sizes and rules but writes its own format.
        values = embedded_model_format() if chosen == "" else {}
        values.update(overrides or {})
        values.update(model=chosen, profile=competition.answer_profile)
        cfg = load_config(config or competition.config, **values)
        return cls(competition, cfg, **kwargs)

    # --- answering ----------------------------------------------------------------------
    def prepare(self, rerun: bool | None = None) -> None:
        """Before serving. Interactive session: load the model and solve one warm-up problem,
        raising ``NotReadyError`` (naming the fix) if the model does not load or the warm-up
        fails with an error. Competition rerun (default: read from the environment): nothing,
        since the server must start first and the model loads inside the first call."""
        if is_competition_rerun() if rerun is None else rerun:
            log.info("competition rerun: the model loads inside the first call")
            return
        solver = self._load_solver()
        if solver is None:
            raise NotReadyError(f"the model did not load: {self._load_error}\n{FIXES}")
        limit = min(WARMUP_LIMIT_S, self.cfg.problem_time_s)
        result = solver.solve(WARMUP_PROBLEM, "warm-up", time_limit_s=limit)
        error = _error_of(result)
        if error is not None:
            raise NotReadyError(f"the warm-up problem failed: {error}\n{FIXES}")
        log.info("warm-up: answered %s in %.1f s (%s)", result.answer, result.elapsed_s, result.stop_reason)

    def answer(self, problem_id: str, problem: object, reference: object = None) -> int | str:
        """The answer to one problem, within the time policy's allowance; never raises.
        ``reference``, the expected answer when known, is only logged."""
        started = time.monotonic()
        solver = self._load_solver()
        # The allowance is taken after the load, so the policy sees the load as time spent.
        allowance = self.bank.allowance()
        answer, detail, fallback = self.profile.fallback, "no model", True  # the load error was logged once
        if solver is not None and allowance <= 0:
            detail = "out of time"
            log.error("problem %s: out of time; answering the fallback %r", problem_id, answer)
        elif solver is not None:
            try:
                result = solver.solve(problem, problem_id, time_limit_s=allowance)
                # The solver logs its own fallbacks.
                answer, detail, fallback = result.answer, result.stop_reason, result.used_fallback
            except Exception as exc:  # Solver.solve does not raise; this is the last net
                detail = f"error: {exc}"
                log.error("problem %s: %s; answering the fallback %r", problem_id, detail, answer)
        value = int(answer) if self.profile.integer else answer
        used = time.monotonic() - started
        timing = self.bank.record(problem_id, allowance, used, value)
        record = {"id": problem_id, "answer": value, "allowance_s": round(allowance, 3), "used_s": round(used, 3),
                  "bank_after_s": round(timing.bank_after_s, 3), "elapsed_s": round(self.bank.elapsed_s(), 3),
                  "fallback": fallback, "detail": detail}
        if reference is not None:
            record.update(reference=str(reference), correct=self.profile.parse(str(reference)) == str(value))
        self.records.append(record)
        self._write_log(record)
        return value

    def predict(self, id_: object, problem: object, *columns: object) -> pl.DataFrame:
        """Kaggle's call: one length-1 Series per CSV column, in the CSV's order (id, problem,
        then any others), out one row (id, answer). An ``answer`` column is the reference."""
        problem_id = _scalar(id_, "id")
        try:
            text = _scalar(problem, "problem")
        except ValueError as exc:
            log.error("problem %s: %s", problem_id, exc)
            text = None
        reference = None
        for column in columns:
            if _series_name(column) == "answer":
                try:
                    reference = _scalar(column, "answer")
                except ValueError as exc:
                    log.error("problem %s: reference ignored: %s", problem_id, exc)
        return pl.DataFrame({"id": [problem_id], "answer": [self.answer(str(problem_id), text, reference)]})

    def predict_function(self) -> Callable[..., pl.DataFrame]:
        """``self.predict`` as a plain function named ``predict``: the inference server
        registers its endpoint by the function's name."""

        def predict(*columns):
            return self.predict(*columns)

        return predict

    def timing_table(self) -> pl.DataFrame:
        """Each problem's answer, whether it was the fallback (and why), its allowance, time
        used and the bank after it, in serving order; reference and correct on a rehearsal."""
        columns = ["id", "answer", "fallback", "detail", "allowance_s", "used_s", "bank_after_s"]
        if any("reference" in r for r in self.records):
            columns[2:2] = ["reference", "correct"]
        return pl.DataFrame([{c: r.get(c) for c in columns} for r in self.records],
                            schema=columns, orient="row")

    def summary(self) -> str:
        """One line: problems answered, fallbacks (and the load failure), and the score when
        the problems came with reference answers."""
        done = len(self.records)
        fallbacks = sum(r["fallback"] for r in self.records)
        line = f"{done} problems answered, {fallbacks} with the fallback {self.profile.fallback!r}"
        if self._load_error is not None:
            line += f" (the model did not load: {self._load_error})"
        scored = [r for r in self.records if "correct" in r]
        if scored:
            line += f"; score {sum(r['correct'] for r in scored)}/{len(scored)} against the reference answers"
        return line

    def close(self) -> None:
        if self._solver is not None:
            self._solver.close()
            self._solver = None

    # --- internals ------------------------------------------------------------------------
    def _load_solver(self):
        # Two first calls at once (a gateway with several workers, a user's threads) must
        # not each build a solver: two engines on one GPU, one never closed.
        with self._load_lock:
            if self._solver is None and self._load_error is None:
                started = time.monotonic()
                try:
                    self._solver = self._solver_factory(self.cfg)
                    log.info("model loaded in %.1f s", time.monotonic() - started)
                except Exception as exc:  # answer every problem with the fallback rather than crash
                    self._load_error = f"{type(exc).__name__}: {exc}"
                    log.critical(LOAD_FAILED, self._load_error, self.profile.fallback, FIXES)
            return self._solver

    def _write_log(self, record: dict) -> None:
        if self.log_path is None:
            return
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def choose_model(model: Paths, use_embedded_model: bool) -> str:
    """The first folder of ``model`` that exists (a folder, or the folders Kaggle may mount the
    model at, the 2026 layout first: ``kit.kaggle.offline``); "" (the embedded model) when none
    does and it is asked for; else an error naming every folder, raised in the notebook's cell
    rather than at the first problem."""
    found = find_input(model)
    if found is not None and found.is_dir():
        return str(found)
    if use_embedded_model:
        log.warning("model folder not found at %s: using the embedded SmolLM2-135M-Instruct",
                    " or ".join(candidates(model)) or "(none given)")
        from kit.embedded_model import prepare_embedded_model

        prepare_embedded_model()
        return ""
    raise input_not_found(model, "model folder", "attach the model (the dataset or Kaggle model that "
                          "python -m kit bundle names) and set MODEL to it, or set USE_EMBEDDED_MODEL = True")


# The embedded model's own config, and the fields of it that describe how that model writes
# and runs rather than how big the run is: SmolLM2 was never trained on tool outputs, rarely
# boxes an answer, and runs on CPU, where bf16 is emulated and torch.compile doubles the load.
EMBEDDED_MODEL_CONFIG = "cpu-smol"
EMBEDDED_MODEL_FORMAT_FIELDS = ("tool_format", "answer_from_code_output", "prompt_template", "system_prompt",
                                "dtype", "enforce_eager")


def embedded_model_format() -> dict:
    """The embedded model's format fields (from its own config), for a competition config
    that was written for a real model."""
    own = dataclasses.asdict(load_config(EMBEDDED_MODEL_CONFIG))
    return {name: own[name] for name in EMBEDDED_MODEL_FORMAT_FIELDS}


def _is_pandas_series(value: object) -> bool:
    pandas = sys.modules.get("pandas")  # not imported: the value cannot be a pandas Series
    return pandas is not None and isinstance(value, pandas.Series)


def _series_name(value: object) -> object:
    return value.name if isinstance(value, pl.Series) or _is_pandas_series(value) else None


def _scalar(value: object, what: str) -> object:
    """The single value of a one-row polars or pandas Series (what a gateway sends), or the
    value itself; ValueError naming ``what`` for a Series of another length."""
    if isinstance(value, pl.Series) or _is_pandas_series(value):
        if len(value) != 1:
            raise ValueError(f"{what}: expected a one-row Series, got {len(value)} rows")
        return value.item()  # a Python value for both (pandas: not a numpy scalar)
    return value


def _error_of(result) -> str | None:
    """Why a solve failed, when it answered the fallback because of an error rather than
    because no candidate voted: the problem failed, or every candidate did."""
    if result.stop_reason.startswith("error"):
        return result.stop_reason
    if result.candidates and all(c.reason.startswith("error") for c in result.candidates):
        return result.candidates[0].reason
    return None


def competition_test_csv(competition: Competition) -> str:
    """The competition's test.csv where Kaggle mounted it (the 2026 layout first), for a gateway
    to read (the rerun's server serves the hidden set without it); InputNotFoundError naming both
    paths when it is at neither."""
    return str(resolve_input(competition.test_csvs, f"{competition.name}'s test.csv",
                             f"attach the competition {competition.kaggle_slug} (competition_sources) or pass "
                             "test_csv (the notebook's TEST_CSV)"))


def serve(submission: Submission, test_csv: str | None = None, out_path: str = "submission.parquet"):
    """Hand ``predict`` to the competition's API: Kaggle's package when it is mounted (the
    rerun serves the hidden set; an interactive run uses Kaggle's local gateway), else the
    local stand-in with the same contract."""
    from kit.kaggle import local_gateway

    competition = submission.competition
    data_dir = find_input(competition.data_dirs)  # the 2026 layout first, then the older one
    if data_dir is not None and str(data_dir) not in sys.path:
        sys.path.append(str(data_dir))  # Kaggle mounts kaggle_evaluation/ (or aimo/) beside test.csv
    predict = submission.predict_function()

    if competition.api == "aimo1":
        try:
            env = importlib.import_module("aimo").make_env()
        except ModuleNotFoundError:
            env = local_gateway.make_env(test_csv or competition_test_csv(competition), competition, out_path=out_path)
        for test, sample_submission in env.iter_test():
            frame = predict(*(test[column] for column in test.columns))
            sample_submission["answer"] = frame["answer"].item(0)
            env.predict(sample_submission)
        return env

    try:
        module = importlib.import_module(competition.server_module)
    except ModuleNotFoundError:
        log.info("%s is not mounted (not on sys.path, nor in %s): serving through the local gateway",
                 competition.server_module, " or ".join(competition.data_dirs))
        return local_gateway.run_local_gateway(predict, test_csv or competition_test_csv(competition), competition,
                                               started_at=submission.bank.started_at, out_path=out_path)
    server = getattr(module, competition.server_class)(predict)
    if is_competition_rerun():
        server.serve()
    else:
        server.run_local_gateway((test_csv or competition_test_csv(competition),))
    return server

"""A local stand-in for Kaggle's evaluation API, so a notebook's ``predict`` runs off Kaggle.

Kaggle's ``kaggle_evaluation`` package ships with the competition data, not on PyPI; this
module enforces the same contract so tests (and notebooks run elsewhere) fail here rather
than in a scored run. ``run_local_gateway`` (AIMO-2 / AIMO-3) checks:

- the function is named ``predict`` (the server registers it by name: no lambda, no alias);
- the server starts serving within ``competition.startup_limit_s`` of ``started_at``;
- the test CSV has ``id`` and ``problem`` columns; its rows are shuffled (a seed from
  ``os.urandom`` unless one is given) and sent one at a time as ``predict(id_, problem)``,
  two one-row polars Series named ``id`` and ``problem`` (ids always strings);
- calls are served one at a time from a worker thread, not the main thread;
- each return is a one-row polars or pandas DataFrame with exactly the columns ``id`` and
  ``answer``, the id sent back, the answer an integer (not bool, str or float) within the
  competition's answer range (``kit.answers`` profile);
- every call but the first (which loads the model) returns within
  ``competition.response_timeout_s``;
- the submission (id, answer in the order served) is written to ``submission.parquet``.

``LocalAimo1Env`` (``make_env``) does the same for AIMO-1's ``env.iter_test()`` /
``env.predict(sample_submission)`` loop with pandas frames, and also checks that
``predict`` is called exactly once per problem before the next one is fetched.

What it does not do: it is not gRPC (arguments and results are passed in-process, not
serialized, so objects that would not survive serialization pass here); it cannot kill a
call that overruns (a thread cannot be stopped): it fails the run when the timeout passes
(the call keeps running in its thread) or, for the first call, only after it returns. It
does not limit the notebook's total run time, memory or disk, and it does not
check the private rerun's fixed order (every run here is shuffled).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.answers import get_profile
from kit.competitions import Competition


class GatewayError(RuntimeError):
    """The notebook broke the evaluation API's contract (Kaggle would fail the run)."""


@dataclass
class GatewayRun:
    submission: pl.DataFrame  # columns id (str), answer (int), in the order served
    order: list[str]  # ids in the order they were served
    durations_s: list[float]  # wall time of each call, in the same order


def _read_test(test_csv: str | Path, seed: int | None) -> pl.DataFrame:
    """The test rows (ids as strings), shuffled like Kaggle's gateway does."""
    df = pl.read_csv(test_csv, schema_overrides={"id": pl.Utf8})
    for column in ("id", "problem"):
        if column not in df.columns:
            raise GatewayError(f"{test_csv}: missing column {column!r} (has {df.columns}; needs id, problem)")
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "big")
    return df.select("id", "problem").sample(fraction=1.0, shuffle=True, seed=seed)


def _is_pandas(x: Any) -> bool:
    return type(x).__module__.startswith("pandas")


def validate_row(result: Any, id_: str, competition: Competition) -> int:
    """The answer in one returned row, or GatewayError naming ``id_`` and what was wrong."""
    where = f"predict for id {id_!r}"
    if isinstance(result, pl.DataFrame):
        columns, height = list(result.columns), result.height
    elif _is_pandas(result) and type(result).__name__ == "DataFrame":
        columns, height = [str(c) for c in result.columns], len(result)
    else:
        raise GatewayError(f"{where} returned {type(result).__name__}, not a polars or pandas DataFrame")
    if sorted(columns) != ["answer", "id"]:
        raise GatewayError(f"{where} returned columns {columns}; expected exactly ['id', 'answer']")
    if height != 1:
        raise GatewayError(f"{where} returned {height} rows; expected exactly 1")
    if isinstance(result, pl.DataFrame):
        got_id, value, dtype = result["id"].item(0), result["answer"].item(0), result["answer"].dtype
        integer_dtype = dtype.is_integer()
    else:
        from pandas.api.types import is_bool_dtype, is_integer_dtype

        got_id, value, dtype = result["id"].iloc[0], result["answer"].iloc[0], result["answer"].dtype
        integer_dtype = is_integer_dtype(dtype) and not is_bool_dtype(dtype)
    if str(got_id) != id_:
        raise GatewayError(f"{where} returned id {got_id!r}; expected the id sent, {id_!r}")
    # An object column holding a Python int is an integer too; bool is not (though bool is an int).
    if value is None or isinstance(value, bool) or not (integer_dtype or isinstance(value, int)):
        raise GatewayError(f"{where}: answer {value!r} (dtype {dtype}) is not an integer")
    answer = int(value)
    profile = get_profile(competition.answer_profile)
    low, high = profile.min_value, profile.max_value
    if (low is not None and answer < low) or (high is not None and answer > high):
        raise GatewayError(f"{where}: answer {answer} is outside {low}..{high} ({competition.name})")
    return answer


def _finish(order: list[str], answers: list[int], durations: list[float], out_path: str | Path) -> GatewayRun:
    submission = pl.DataFrame({"id": order, "answer": answers}, schema={"id": pl.Utf8, "answer": pl.Int64})
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    submission.write_parquet(out_path)
    return GatewayRun(submission=submission, order=list(order), durations_s=list(durations))


def run_local_gateway(
    predict: Callable[[pl.Series, pl.Series], Any],
    test_csv: str | Path,
    competition: Competition,
    *,
    seed: int | None = None,
    started_at: float | None = None,
    response_timeout_s: float | None = None,
    out_path: str | Path = "submission.parquet",
) -> GatewayRun:
    """Serve ``test_csv`` to ``predict`` as Kaggle's AIMO-2/3 gateway does (see the module
    docstring); ``started_at`` is a ``time.monotonic()`` reading of the notebook's start."""
    elapsed = time.monotonic() - (time.monotonic() if started_at is None else started_at)
    if elapsed > competition.startup_limit_s:
        raise GatewayError(
            f"the server started serving {elapsed:.0f} s after the notebook's start; "
            f"the limit is {competition.startup_limit_s:.0f} s"
        )
    if competition.api != "kaggle_evaluation":
        raise GatewayError(f"{competition.name} uses the {competition.api!r} API: use make_env")
    if getattr(predict, "__name__", None) != "predict":
        raise GatewayError(
            f"the inference server registers a function named 'predict'; got {getattr(predict, '__name__', predict)!r}"
        )
    limit = competition.response_timeout_s if response_timeout_s is None else response_timeout_s
    test = _read_test(test_csv, seed)
    order: list[str] = []
    answers: list[int] = []
    durations: list[float] = []
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-gateway")
    try:
        for row in test.iter_slices(n_rows=1):
            id_ = row["id"].item(0)
            timeout = None if not order else limit  # the first call loads the model: no deadline
            start = time.monotonic()
            future = executor.submit(predict, row["id"], row["problem"])
            try:
                result = future.result(timeout=timeout)
            except FutureTimeout:
                raise GatewayError(f"predict for id {id_!r} did not return within the {timeout} s limit") from None
            except Exception as exc:
                raise GatewayError(f"predict for id {id_!r} raised {type(exc).__name__}: {exc}") from exc
            durations.append(time.monotonic() - start)
            answers.append(validate_row(result, id_, competition))
            order.append(id_)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return _finish(order, answers, durations, out_path)


class LocalAimo1Env:
    """AIMO-1's ``aimo`` env: ``for test, sample_submission in env.iter_test(): ...;
    env.predict(sample_submission)``, with one-row pandas frames."""

    def __init__(
        self,
        test_csv: str | Path,
        competition: Competition,
        *,
        seed: int | None = None,
        out_path: str | Path = "submission.parquet",
    ):
        if competition.api != "aimo1":
            raise GatewayError(f"{competition.name} uses the {competition.api!r} API: use run_local_gateway")
        self.competition = competition
        self.out_path = out_path
        self._test = _read_test(test_csv, seed)
        self._started = False
        self._pending: str | None = None  # id fetched and not yet predicted
        self._fetched_at = 0.0
        self._order: list[str] = []
        self._answers: list[int] = []
        self._durations: list[float] = []
        self._run: GatewayRun | None = None

    def iter_test(self) -> Iterator[tuple[Any, Any]]:
        if self._started:
            raise GatewayError("iter_test can only be called once")
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[tuple[Any, Any]]:
        import pandas as pd

        for id_, problem in self._test.iter_rows():
            self._pending, self._fetched_at = id_, time.monotonic()
            yield pd.DataFrame({"id": [id_], "problem": [problem]}), pd.DataFrame({"id": [id_], "answer": [0]})
            if self._pending is not None:
                raise GatewayError(
                    f"predict was not called for id {self._pending!r} before the next problem was fetched"
                )
        self._run = _finish(self._order, self._answers, self._durations, self.out_path)

    def predict(self, submission: Any) -> None:
        if self._pending is None:
            raise GatewayError("predict called with no problem pending: one call per problem from iter_test")
        id_ = self._pending
        answer = validate_row(submission, id_, self.competition)
        self._durations.append(time.monotonic() - self._fetched_at)
        self._order.append(id_)
        self._answers.append(answer)
        self._pending = None

    @property
    def run(self) -> GatewayRun:
        if self._run is None:
            raise GatewayError("the run is not finished: iterate iter_test to the end first")
        return self._run


def make_env(test_csv: str | Path, competition: Competition, **kw: Any) -> LocalAimo1Env:
    """AIMO-1's ``aimo.make_env()``, reading ``test_csv``."""
    return LocalAimo1Env(test_csv, competition, **kw)

"""A local stand-in for Kaggle's evaluation API, so a notebook's ``predict`` runs off Kaggle.

Kaggle's ``kaggle_evaluation`` package ships with the competition data, not on PyPI; this
module behaves like it at every point below, so tests (and notebooks run elsewhere) fail here
rather than in a scored run. Read for it (sources cited by GitHub repository/path; the
package is vendored in competitors' repositories):

- the AIMO-3 gateway, ``ummuglsm0134/AI-Mathematical-Olympiad---Progress-Prize-3`` and
  ``Loofy147/Solver``: ``kaggle_evaluation/aimo_3_gateway.py`` (and ``aimo_3_inference_server.py``);
- the AIMO-2 gateway and the core it was written against, ``zhangzhiqiangccm/competition``:
  ``kaggle_evaluation/aimo_2_gateway.py``, ``kaggle_evaluation/core/{base_gateway,relay,templates}.py``;
- the newer core the AIMO-3 gateway is written against (its abstract
  ``competition_specific_validation``), ``yashwilk/mitsui-commodity-prediction-challenge``:
  ``kaggle_evaluation/core/{base_gateway,relay,templates}.py``.

``run_local_gateway`` (AIMO-2 / AIMO-3), point by point:

- *every CSV column, positionally*: the gateway reads the CSV with ``pl.read_csv`` (types
  inferred: an all-digit id column arrives as integers) and calls ``predict(*row)`` for each
  one-row slice, so ``predict`` gets one length-1 ``pl.Series`` per column, named after it:
  ``reference.csv`` (``id, problem, answer``) sends three (both gateways'
  ``generate_data_batches``; ``core/templates.py`` / ``core/base_gateway.py``
  ``get_all_predictions``). Each Series goes through a parquet round trip as in ``relay.py``
  ``_serialize``/``_deserialize``. A ``predict`` that takes fewer arguments raises
  ``TypeError`` inside the server, and the run stops with no submission written;
- *shuffled*: a seed from ``os.urandom(4)`` unless one is given; ``shuffle=False`` is the
  private rerun's fixed order (AIMO-3's ``USE_PRIVATE_SET``; AIMO-2 always shuffles);
- *one call at a time, off the main thread*: the server is ``grpc.server(ThreadPoolExecutor(
  max_workers=1))`` (``relay.py`` ``define_server``);
- *listeners must be plain named functions*: ``define_server`` refuses a non-callable and a
  lambda, and the endpoint is found by ``__name__`` (``No listener for predict was registered``);
- *900 s start-up*: ``relay.STARTUP_LIMIT_SECONDS = 60 * 15``; in the rerun the gateway gives
  up connecting after it, Kaggle's own ``run_local_gateway`` only warns; here it is an error,
  timed from ``started_at`` (the notebook's first cell) rather than from Kaggle's import;
- *per-call timeout*: none on the first call (``relay.Client`` sends it without a deadline),
  then ``set_response_timeout_seconds``: 30 min on AIMO-2, 9 h on AIMO-3;
- *the return*: ``None`` fails the call; on AIMO-3 (newer core, ``competition_agnostic_validation``)
  a DataFrame or Series (polars or pandas) must have exactly one row, and a bare scalar
  (int, float, str, bool) passes each call but fails the run at the end, as does an unnamed
  Series: ``write_submission`` cannot name its column (the AIMO-3 gateway sets no
  ``target_column_name``). A named Series becomes the column of its name;
- *ids*: AIMO-3's ``write_submission`` overwrites the id column with the ids it sent
  (``with_columns(row_ids)``), so a returned id is not checked; AIMO-2's older core
  (``validate_prediction_batch``) requires a DataFrame with an ``id`` column equal to the id
  sent, value and type (``pl.Series.equals``);
- *the submission*: ``submission.parquet``, id first, in the order served.

Beyond Kaggle's gateway, for the scorer (which is not public: the columns and types it
accepts could not be confirmed), each return must give an ``answer`` that is an integer (not
bool, str or float) in the competition's range, with no column but ``id`` and ``answer``;
the CSV's first two columns must be ``id`` and ``problem`` (Kaggle's test.csv order, which
the kit's ``predict`` reads positionally). These are checked per call, naming the id.

What it does not do: it is not gRPC (the return is not serialized, so a return type the
relay would refuse, such as a polars ``Object`` column, passes here); it cannot kill a call
that overruns (a thread cannot be stopped): it fails the run when the timeout passes (the
call keeps running in its thread) or, for the first call, only after it returns. It does not
limit the notebook's total run time, memory or disk, and it does not write ``result.json``.

``LocalAimo1Env`` (``make_env``) does the same for AIMO-1's ``env.iter_test()`` /
``env.predict(sample_submission)`` loop with pandas frames, and also checks that
``predict`` is called exactly once per problem before the next one is fetched (AIMO-1's
``aimo`` package was not found to read: this follows its public notebooks).
"""

from __future__ import annotations

import io
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
from kit.kaggle.competitions import Competition


class GatewayError(RuntimeError):
    """The notebook broke the evaluation API's contract (Kaggle would fail the run)."""


@dataclass
class GatewayRun:
    submission: pl.DataFrame  # columns id, answer, in the order served
    order: list[Any]  # ids in the order they were served, typed as the CSV was read
    durations_s: list[float]  # wall time of each call, in the same order


def _read_test(test_csv: str | Path, seed: int | None, shuffle: bool = True, **read_options: Any) -> pl.DataFrame:
    """Every column of the test CSV, shuffled like Kaggle's gateway does."""
    df = pl.read_csv(test_csv, **read_options)
    if df.columns[:2] != ["id", "problem"]:
        raise GatewayError(f"{test_csv}: the first columns are {df.columns[:2]}; Kaggle's test.csv starts "
                           "with id, problem, which predict receives positionally")
    if not shuffle:
        return df
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "big")
    return df.sample(fraction=1.0, shuffle=True, with_replacement=False, seed=seed)


def _is_pandas(x: Any, kind: str) -> bool:
    return type(x).__module__.startswith("pandas") and type(x).__name__ == kind


def _relayed(series: pl.Series) -> pl.Series:
    """``series`` after the relay's parquet round trip (what the server's predict receives)."""
    buffer = io.BytesIO()
    pl.DataFrame(series).write_parquet(buffer, compression="lz4", statistics=False)
    buffer.seek(0)
    return pl.read_parquet(buffer).to_series()


def check_listener(predict: Any) -> None:
    """Kaggle's ``define_server`` and its endpoint lookup: a named callable called ``predict``."""
    if not callable(predict):
        raise GatewayError(f"endpoint listeners must be functions, got {type(predict).__name__}")
    name = getattr(predict, "__name__", None)  # a partial or a callable object has none: Kaggle fails there too
    if name == "<lambda>":
        raise GatewayError("functions passed as endpoint listeners must be named (got a lambda)")
    if name != "predict":
        raise GatewayError(f"no listener for predict was registered: the server registers a function by "
                           f"its name, and this one is {name!r}")


def _kaggle_rows(result: Any, where: str, sent_id: Any, competition: Competition) -> None:
    """What Kaggle's gateway checks on each return (see the module docstring)."""
    if result is None:
        raise GatewayError(f"{where} returned None: no prediction received")
    frame_like = isinstance(result, (pl.DataFrame, pl.Series)) or _is_pandas(result, "DataFrame") or _is_pandas(
        result, "Series")
    if not competition.ids_overwritten:  # AIMO-2's older core: a frame with the id sent back
        if not (isinstance(result, pl.DataFrame) or _is_pandas(result, "DataFrame")):
            raise GatewayError(f"{where} returned {type(result).__name__}: {competition.name}'s gateway needs a "
                               "DataFrame with an id column")
        if "id" not in result.columns:
            raise GatewayError(f"{where} returned no id column")
    elif not frame_like and not isinstance(result, (int, float, str, bool)):
        raise GatewayError(f"{where} returned {type(result).__name__}: invalid prediction data type")
    if frame_like and len(result) != 1:
        raise GatewayError(f"{where} returned {len(result)} rows; expected exactly 1")
    if not competition.ids_overwritten and not pl.Series(result["id"]).equals(pl.Series([sent_id])):
        raise GatewayError(f"{where} returned id {pl.Series(result['id']).item()!r}; expected the id sent, {sent_id!r}")


def validate_row(result: Any, id_: Any, competition: Competition) -> int | None:
    """The answer in one return, or GatewayError naming ``id_`` and what was wrong: Kaggle's
    gateway's checks, then the scorer's. None for a return that passes the call but fails
    the run at the end (a bare scalar or unnamed Series on AIMO-3)."""
    where = f"predict for id {id_!r}"
    _kaggle_rows(result, where, id_, competition)
    if isinstance(result, (pl.Series, int, float, str, bool)) or _is_pandas(result, "Series"):
        name = result.name if isinstance(result, pl.Series) or _is_pandas(result, "Series") else None
        if not name:
            return None
        if name != "answer":
            raise GatewayError(f"{where} returned a Series named {name!r}; the submission's column must be 'answer'")
        column = result
    else:
        columns = [str(c) for c in result.columns]
        if "answer" not in columns or not set(columns) <= {"id", "answer"}:
            raise GatewayError(f"{where} returned columns {columns}; expected ['id', 'answer']")
        column = result["answer"]
    value, dtype = column.item(), column.dtype  # both a Python value (pandas: not a numpy scalar)
    if isinstance(column, pl.Series):
        integer_dtype = dtype.is_integer()
    else:
        from pandas.api.types import is_bool_dtype, is_integer_dtype

        integer_dtype = is_integer_dtype(dtype) and not is_bool_dtype(dtype)
    # An object column holding a Python int is an integer too; bool is not (though bool is an int).
    if value is None or isinstance(value, bool) or not (integer_dtype or isinstance(value, int)):
        raise GatewayError(f"{where}: answer {value!r} (dtype {dtype}) is not an integer")
    answer = int(value)
    profile = get_profile(competition.answer_profile)
    low, high = profile.min_value, profile.max_value
    if (low is not None and answer < low) or (high is not None and answer > high):
        raise GatewayError(f"{where}: answer {answer} is outside {low}..{high} ({competition.name})")
    return answer


def _finish(order: list[Any], answers: list[int], durations: list[float], out_path: str | Path) -> GatewayRun:
    submission = pl.DataFrame({"id": order, "answer": answers}, schema_overrides={"answer": pl.Int64})
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    submission.write_parquet(out_path)
    return GatewayRun(submission=submission, order=list(order), durations_s=list(durations))


def run_local_gateway(
    predict: Callable[..., Any],
    test_csv: str | Path,
    competition: Competition,
    *,
    seed: int | None = None,
    shuffle: bool = True,
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
    check_listener(predict)
    limit = competition.response_timeout_s if response_timeout_s is None else response_timeout_s
    test = _read_test(test_csv, seed, shuffle)
    order: list[Any] = []
    answers: list[int | None] = []
    durations: list[float] = []
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-gateway")
    try:
        for row in test.iter_slices(n_rows=1):
            id_ = row["id"].item(0)
            timeout = None if not order else limit  # the first call loads the model: no deadline
            start = time.monotonic()
            future = executor.submit(predict, *(_relayed(column) for column in row))
            try:
                result = future.result(timeout=timeout)
            except FutureTimeout:
                raise GatewayError(f"predict for id {id_!r} did not return within the {timeout} s limit") from None
            except Exception as exc:
                raise GatewayError(f"predict for id {id_!r} raised {type(exc).__name__}: {exc} "
                                   "(Kaggle: SERVER_RAISED_EXCEPTION; the run stops, no submission)") from exc
            durations.append(time.monotonic() - start)
            answers.append(validate_row(result, id_, competition))
            order.append(id_)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    unnamed = [i for i, a in zip(order, answers) if a is None]
    if unnamed:
        raise GatewayError(
            f"predict returned a bare value or an unnamed Series for {len(unnamed)} of {len(order)} ids "
            f"(first {unnamed[0]!r}): each call passed, but Kaggle's gateway fails the run when it writes "
            "submission.parquet (it cannot name the column); return a DataFrame with id and answer"
        )
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
        self._test = _read_test(test_csv, seed, schema_overrides={"id": pl.Utf8}).select("id", "problem")
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

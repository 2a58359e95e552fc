"""kit/kaggle/local_gateway.py: the local stand-in for Kaggle's evaluation API enforces its contract."""

from __future__ import annotations

import threading
import time

import pandas as pd
import polars as pl
import pytest

from kit.kaggle.competitions import get_competition
from kit.kaggle.local_gateway import GatewayError, GatewayRun, make_env, run_local_gateway

AIMO3 = get_competition("aimo3")
AIMO2 = get_competition("aimo2")
AIMO1 = get_competition("aimo1")


@pytest.fixture
def csv20(tmp_path):
    path = tmp_path / "test.csv"
    ids = [f"p{i:02d}" for i in range(20)]
    pl.DataFrame({"id": ids, "problem": [f"What is {i}+1?" for i in range(20)]}).write_csv(path)
    return path


@pytest.fixture
def csv3(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("id,problem\nq1,a\nq2,b\nq3,c\n")
    return path


@pytest.fixture
def reference_csv(tmp_path):
    """Like the competition's reference.csv: id, problem, answer."""
    path = tmp_path / "reference.csv"
    path.write_text("id,problem,answer\nr1,What is 1+1?,2\nr2,What is 2+2?,4\nr3,What is 3+3?,6\n")
    return path


def run(predict, csv, competition=AIMO3, **kw):
    kw.setdefault("out_path", csv.parent / "submission.parquet")
    return run_local_gateway(predict, csv, competition, **kw)


def answer_with(value):
    """A predict that answers ``value`` for every id."""

    def predict(id_, problem):
        return pl.DataFrame({"id": [id_.item(0)], "answer": [value]})

    return predict


def test_all_ids_come_back_in_a_shuffled_order(csv20):
    file_order = [f"p{i:02d}" for i in range(20)]
    first = run(answer_with(1), csv20, seed=1)
    second = run(answer_with(1), csv20, seed=2)
    assert isinstance(first, GatewayRun)
    assert sorted(first.order) == file_order == sorted(second.order)
    assert first.order != file_order
    assert first.order != second.order
    assert len(first.durations_s) == 20


def test_predict_receives_one_row_series_named_id_and_problem(csv3):
    seen = []

    def predict(id_, problem):
        seen.append((type(id_), id_.name, len(id_), type(problem), problem.name, len(problem)))
        return pl.DataFrame({"id": id_.item(0), "answer": 0})

    run(predict, csv3)
    assert seen == [(pl.Series, "id", 1, pl.Series, "problem", 1)] * 3


def test_every_csv_column_is_sent_positionally_as_a_named_series(reference_csv):
    seen = []

    def predict(*columns):
        seen.append([(type(c), c.name, len(c)) for c in columns])
        return pl.DataFrame({"id": columns[0].item(0), "answer": 0})

    run(predict, reference_csv)
    assert seen == [[(pl.Series, "id", 1), (pl.Series, "problem", 1), (pl.Series, "answer", 1)]] * 3


def test_a_predict_taking_two_arguments_fails_on_a_three_column_csv_with_no_submission(reference_csv):
    with pytest.raises(GatewayError, match="takes 2 positional arguments but 3 were given"):
        run(answer_with(0), reference_csv)
    assert not (reference_csv.parent / "submission.parquet").exists()


def test_ids_keep_the_type_polars_infers_from_the_csv(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("id,problem\n1,a\n2,b\n3,c\n")
    ids = []

    def predict(id_, problem):
        ids.append(id_.item(0))
        return pl.DataFrame({"id": id_.item(0), "answer": 0})

    result = run(predict, path, seed=0)
    assert sorted(result.order) == sorted(ids) == [1, 2, 3]
    assert pl.read_parquet(path.parent / "submission.parquet")["id"].dtype == pl.Int64


def test_without_shuffling_the_file_order_is_kept(csv20):
    assert run(answer_with(1), csv20, shuffle=False).order == [f"p{i:02d}" for i in range(20)]


def test_calls_are_one_at_a_time_off_the_main_thread(csv20):
    threads, active, peak = [], [0], [0]
    lock = threading.Lock()

    def predict(id_, problem):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threads.append(threading.current_thread())
        time.sleep(0.005)
        with lock:
            active[0] -= 1
        return pl.DataFrame({"id": id_.item(0), "answer": 0})

    run(predict, csv20)
    assert peak[0] == 1
    assert len(threads) == 20
    assert all(t is not threading.main_thread() for t in threads)


def test_a_lambda_is_refused(csv3):
    with pytest.raises(GatewayError, match="must be named"):
        run(lambda id_, problem: pl.DataFrame({"id": id_.item(0), "answer": 0}), csv3)


def test_a_function_not_named_predict_is_refused(csv3):
    def solve(id_, problem):
        return pl.DataFrame({"id": id_.item(0), "answer": 0})

    with pytest.raises(GatewayError, match="no listener for predict"):
        run(solve, csv3)


@pytest.mark.parametrize(
    "make_result, what",
    [
        (lambda i: None, "None"),
        (lambda i: [1], "invalid prediction data type"),
        (lambda i: pl.DataFrame({"id": [i]}), "columns"),
        (lambda i: pl.DataFrame({"id": [i], "answer": [1], "why": ["x"]}), "columns"),
        (lambda i: pl.Series("score", [1]), "named 'score'"),
        (lambda i: pl.DataFrame({"id": [i, i], "answer": [1, 2]}), "2 rows"),
        (lambda i: pl.DataFrame({"id": [i], "answer": ["5"]}), "not an integer"),
        (lambda i: pl.DataFrame({"id": [i], "answer": [5.0]}), "not an integer"),
        (lambda i: pl.DataFrame({"id": [i], "answer": [True]}), "not an integer"),
        (lambda i: pl.DataFrame({"id": [i], "answer": [100000]}), "outside 0..99999"),
        (lambda i: pl.DataFrame({"id": [i], "answer": [-1]}), "outside 0..99999"),
    ],
    ids=["none", "list", "missing-column", "extra-column", "series-named-otherwise", "two-rows", "str", "float",
         "bool", "100000", "-1"],
)
def test_a_bad_return_raises_naming_the_id(csv3, make_result, what):
    def predict(id_, problem):
        return make_result(id_.item(0))

    with pytest.raises(GatewayError, match=what) as err:
        run(predict, csv3, seed=0)
    assert "for id '" in str(err.value)
    first_id = pl.read_csv(csv3, schema_overrides={"id": pl.Utf8}).sample(fraction=1.0, shuffle=True, seed=0)["id"][0]
    assert repr(first_id) in str(err.value)


def test_aimo3_overwrites_the_returned_id_with_the_one_sent(csv3):
    def predict(id_, problem):
        return pl.DataFrame({"id": ["nope"], "answer": [1]})

    result = run(predict, csv3, seed=0)
    assert sorted(pl.read_parquet(csv3.parent / "submission.parquet")["id"].to_list()) == ["q1", "q2", "q3"]
    assert result.submission["id"].to_list() == result.order


def test_aimo2_checks_the_returned_id(csv3):
    def predict(id_, problem):
        return pl.DataFrame({"id": ["nope"], "answer": [1]})

    with pytest.raises(GatewayError, match="expected the id sent"):
        run(predict, csv3, AIMO2)


@pytest.mark.parametrize("value", [5, pl.Series([5]), pd.Series([5])], ids=["int", "polars-series", "pandas-series"])
def test_a_bare_value_passes_each_call_but_fails_the_run_at_the_end_on_aimo3(csv3, value):
    calls = []

    def predict(id_, problem):
        calls.append(id_.item(0))
        return value

    with pytest.raises(GatewayError, match="fails the run when it writes submission.parquet"):
        run(predict, csv3)
    assert len(calls) == 3
    assert not (csv3.parent / "submission.parquet").exists()


def test_a_bare_value_fails_the_first_call_on_aimo2(csv3):
    calls = []

    def predict(id_, problem):
        calls.append(id_.item(0))
        return 5

    with pytest.raises(GatewayError, match="DataFrame with an id column"):
        run(predict, csv3, AIMO2)
    assert len(calls) == 1


def test_a_series_named_answer_is_accepted_on_aimo3_and_gets_the_ids(csv3):
    def predict(id_, problem):
        return pl.Series("answer", [9])

    result = run(predict, csv3)
    assert sorted(result.submission["id"].to_list()) == ["q1", "q2", "q3"]
    assert result.submission["answer"].to_list() == [9, 9, 9]


def test_aimo2_range_is_0_to_999(csv3):
    with pytest.raises(GatewayError, match="outside 0..999"):
        run(answer_with(1000), csv3, AIMO2)


def test_pandas_dataframe_return_is_accepted(csv3):
    def predict(id_, problem):
        return pd.DataFrame({"id": [id_.item(0)], "answer": [42]})

    result = run(predict, csv3)
    assert result.submission["answer"].to_list() == [42, 42, 42]


def test_a_slow_later_call_fails_naming_the_limit(csv3):
    calls = [0]

    def predict(id_, problem):
        calls[0] += 1
        if calls[0] == 2:
            time.sleep(0.5)
        return pl.DataFrame({"id": id_.item(0), "answer": 0})

    with pytest.raises(GatewayError, match="0.2 s limit"):
        run(predict, csv3, response_timeout_s=0.2)


def test_a_slow_first_call_is_fine(csv3):
    calls = [0]

    def predict(id_, problem):
        calls[0] += 1
        if calls[0] == 1:
            time.sleep(0.5)
        return pl.DataFrame({"id": id_.item(0), "answer": 0})

    result = run(predict, csv3, response_timeout_s=0.2)
    assert result.durations_s[0] >= 0.5


def test_server_must_start_within_the_startup_limit(csv3):
    with pytest.raises(GatewayError, match="900"):
        run(answer_with(0), csv3, started_at=time.monotonic() - 1000)


def test_submission_parquet_is_written_in_the_served_order(csv20, tmp_path):
    out = tmp_path / "out" / "submission.parquet"
    result = run(answer_with(7), csv20, seed=3, out_path=out)
    written = pl.read_parquet(out)
    assert written.columns == ["id", "answer"]
    assert written["id"].to_list() == result.order
    assert written.equals(result.submission)


def test_a_csv_without_problem_is_refused_naming_file_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,question\n1,a\n")
    with pytest.raises(GatewayError, match="id, problem") as err:
        run(answer_with(0), path)
    assert str(path) in str(err.value)


def test_aimo1_env_loop_writes_the_submission(csv20, tmp_path):
    out = tmp_path / "submission.parquet"
    env = make_env(csv20, AIMO1, seed=5, out_path=out)
    for test, sample_submission in env.iter_test():
        assert isinstance(test, pd.DataFrame) and list(test.columns) == ["id", "problem"]
        sample_submission["answer"] = int(test["id"].iloc[0][1:])
        env.predict(sample_submission)
    assert sorted(env.run.order) == [f"p{i:02d}" for i in range(20)]
    written = pl.read_parquet(out)
    assert written["id"].to_list() == env.run.order
    assert written["answer"].to_list() == [int(i[1:]) for i in env.run.order]


def test_aimo1_env_refuses_fetching_before_predicting(csv3, tmp_path):
    env = make_env(csv3, AIMO1, out_path=tmp_path / "submission.parquet")
    batches = env.iter_test()
    next(batches)
    with pytest.raises(GatewayError, match="predict was not called"):
        next(batches)

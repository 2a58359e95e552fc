"""Tests of eval.grading.grader with the real math-verify (one property per test).

The answer tables pin the behaviour of math-verify 0.9.0 as this grader uses it: equal answers in
other forms are correct, look-alikes are wrong, and a few lenient or surprising behaviours
(sets for comma lists, dropped units and degrees, percentages) are asserted as documented."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from eval.grading.grader import Grade, Grader, grade_integer, normalize_answer

REPO_ROOT = Path(__file__).resolve().parent.parent
# Math-Verify issue #65: hangs in verify (CPU-bound, little memory) despite its own timeout.
HANG = r"\dfrac{5^{\left(5^{\left(5^{\left(5^5\right)}\right)} - 4\right)} - 5}{16}"
# A tower of powers: sympy's evaluation grows memory until it hits the cap (~1 s at 192 MB).
MEMORY_EATER = r"2^{2^{2^{2^{2^{2^{2^{2}}}}}}}"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not ours counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_gone(pids: list[int], deadline_s: float = 30.0) -> list[int]:
    """The pids still alive after up to deadline_s (wide: it returns as soon as they are gone)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process, in clock ticks (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_busy(pids: list[int], ticks: int = 10, deadline_s: float = 30.0) -> None:
    """Until one of pids has used `ticks` more CPU (a worker computing, not waiting for a pair):
    a condition, not a sleep, so that a loaded machine only makes it later."""
    before = {pid: cpu_ticks(pid) for pid in pids}
    deadline = time.monotonic() + deadline_s
    while not any(cpu_ticks(pid) - before[pid] >= ticks for pid in pids):
        assert time.monotonic() < deadline, f"no worker of {pids} got busy in {deadline_s} s"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout_s=10) as shared:
        yield shared


# ---- answer tables ----------------------------------------------------------------------------

EQUAL = {
    "integer-decimal-tail": ("42", "42.0"),
    "integer-thousands-comma": ("1,000", "1000"),
    "integer-latex-thousands": (r"1,\!000", "1000"),
    "integer-dollars": ("$42$", "42"),
    "fraction-vs-decimal": (r"\frac{1}{2}", "0.5"),
    "dfrac-vs-frac-shorthand": (r"\dfrac{3}{4}", r"\frac34"),
    "sqrt-slash-vs-frac": (r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2"),
    "spacing": (r"2\pi", r"2 \pi"),
    "set-order": (r"\{1,2\}", r"\{2,1\}"),
    "interval-spacing": (r"[0, \infty)", r"[0,\infty)"),
    "tuple-spacing": ("(1,2)", "(1, 2)"),
    "triple-spacing": ("(1,2,3)", "(1, 2, 3)"),
    "unit-text": (r"5\text{ cm}", "5"),
    "percent-vs-number": (r"50\%", "50"),
    "degrees": (r"30^\circ", "30"),
    "assignment-pred": ("3", "x=3"),
    "assignment-gold": ("x=3", "3"),
    "radical-simplified": (r"2\sqrt{3}", r"\sqrt{12}"),
    "power-vs-value": ("2^{10}", "1024"),
    "mixed-number": (r"1\frac{1}{2}", r"\frac{3}{2}"),
    "plus-minus-vs-list": (r"\pm 2", "2, -2"),
    "polynomial-factored": ("x^2+2x+1", "(x+1)^2"),
    "matrix-spacing": (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    "choice-letter": (r"\text{(C)}", "C"),
    "thousands-mark-in-fraction": (r"\frac{12}{5,\!525}", r"\frac{12}{5525}"),
}

NOT_EQUAL = {
    "integer-sign": ("-3", "3"),
    "integer-digits-swapped": ("12", "21"),
    "integer-off-by-one-large": ("123456789", "123456790"),
    "third-vs-two-decimals": (r"\frac{1}{3}", "0.33"),
    "fraction-inverted": (r"\frac{1}{2}", r"\frac{2}{1}"),
    "exponent": ("x^2", "x^3"),
    "interval-closedness": ("[0,1)", "[0,1]"),
    "open-vs-half-open": ("(1,2)", "(1,2]"),
    "tuple-order": ("(1,2,3)", "(3,2,1)"),
    "near-integer-decimal": ("3", "3.0000001"),
    "list-vs-one-item": ("1, 2", "1"),
    "assignment-value": ("x=3", "x=4"),
    "other-choice": (r"\text{(A)}", r"\text{(B)}"),
    "thousands-not-one": ("1", "1,000"),
}


@pytest.mark.parametrize("gold,pred", EQUAL.values(), ids=EQUAL.keys())
def test_equal_answers_in_other_forms_are_correct(grader, gold, pred):
    assert grader.grade(gold, pred).status == "correct"


@pytest.mark.parametrize("gold,pred", NOT_EQUAL.values(), ids=NOT_EQUAL.keys())
def test_look_alikes_are_wrong(grader, gold, pred):
    assert grader.grade(gold, pred).status == "wrong"


# ---- integer fast path --------------------------------------------------------------------------

def test_plain_integers_take_the_fast_path():
    assert grade_integer("1,000", "$1000.0$") == Grade(True, "correct", "integer")


def test_fast_path_declines_what_is_not_a_plain_integer():
    # "1,2" is a list (math-verify's set {1, 2}), not twelve; fractions go to math-verify.
    assert [grade_integer("1,2", "12"), grade_integer(r"\frac{1}{2}", "0.5"), grade_integer("42", "x")] == [None] * 3


def test_fast_path_compares_integers_beyond_int_conversion_limit():
    # Python's int() refuses > 4300 digits; the fast path compares canonical digit strings.
    huge = "9" * 5000
    assert grade_integer(huge, "-" + huge) == Grade(False, "wrong", "integer")


def test_integer_pairs_never_start_a_worker():
    with Grader(workers=1) as lazy:
        lazy.grade("42", "42.0")
        assert lazy.worker_pids() == []


def test_thousands_marks_are_dropped_only_between_digit_groups():
    assert [normalize_answer(r"\frac{12}{5,\!525}"), normalize_answer(r"1,\!2"), normalize_answer("1,234")] == [
        r"\frac{12}{5525}", r"1,\!2", "1,234"]


# ---- documented math-verify behaviours --------------------------------------------------------------

def test_comma_lists_are_compared_as_sets(grader):
    # Order and multiplicity are ignored: "1, 2" is the set {1, 2}.
    assert [grader.grade("1, 2", pred).status for pred in ("2, 1", "1, 2, 2")] == ["correct", "correct"]


def test_units_are_dropped_not_checked(grader):
    # Lenient: "5 cm" equals "5 m" too, since the unit text is simply removed.
    assert grader.grade(r"5\text{ cm}", r"5\text{ m}").status == "correct"


def test_percent_equals_both_the_number_and_the_fraction(grader):
    assert [grader.grade(r"50\%", pred).status for pred in ("50", "0.5")] == ["correct", "correct"]


def test_degrees_are_dropped_not_converted_to_radians(grader):
    assert grader.grade(r"30^\circ", r"\frac{\pi}{6}").status == "wrong"


def test_assignment_variable_name_matters(grader):
    assert grader.grade("x=3", "y=3").status == "wrong"


def test_open_interval_gold_matches_a_two_element_set(grader):
    # Surprising: "(1,2)" parses as the open interval, yet verify accepts the set {1, 2}
    # (it also stands for the point/pair (1, 2)).
    assert grader.grade("(1,2)", r"\{1,2\}").status == "correct"


def test_gold_goes_first(grader):
    # verify is asymmetric: a relation is accepted for an interval gold only the other way round.
    assert [grader.grade("[0,1]", r"0 \le x \le 1").status, grader.grade(r"0 \le x \le 1", "[0,1]").status] == [
        "wrong", "correct"]


# ---- no answer ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pred", [None, "", "   ", "$$"])
def test_missing_prediction_is_no_answer(grader, pred):
    assert grader.grade("42", pred) == Grade(False, "no_answer", "none")


# ---- hangs, memory, crashes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def after_hang():
    """A 1 s grader that has just graded the hang case: (grader, grade, seconds, pids before)."""
    with Grader(workers=1, timeout_s=1) as timed:
        timed.grade(r"\frac{1}{2}", "0.5")  # worker up and warm: start-up is not part of timeout_s
        pids_before = timed.worker_pids()
        started = time.monotonic()
        grade = timed.grade("1", HANG)
        yield timed, grade, time.monotonic() - started, pids_before


def test_hang_is_graded_timeout(after_hang):
    assert after_hang[1] == Grade(False, "timeout", "math_verify")


def test_hang_returns_within_timeout(after_hang):
    # timeout_s is 1; the hang runs for minutes unkilled, so a wide margin still tells.
    assert after_hang[2] < 1 + 9


def test_hung_worker_is_killed(after_hang):
    assert wait_gone(after_hang[3]) == []


def test_grader_works_after_a_timeout(after_hang):
    assert after_hang[0].grade(r"\frac{1}{3}", "0.3333333").status == "correct"


def test_a_timeout_is_not_cached(after_hang):
    # A timeout may be the machine's fault: the same pair is graded again, not served the timeout.
    timed = after_hang[0]
    before = timed.stats()
    assert timed.grade("1", HANG).status == "timeout"
    after = timed.stats()
    assert (after["dispatched"], after["cache_hits"]) == (before["dispatched"] + 1, before["cache_hits"])


@pytest.fixture(scope="module")
def after_memory_eater():
    with Grader(workers=1, timeout_s=20, memory_mb=192) as capped:
        yield capped, capped.grade("1", MEMORY_EATER)


def test_memory_eater_gets_no_verdict(after_memory_eater):
    assert after_memory_eater[1].status in ("error", "timeout")


def test_grader_works_after_memory_eater(after_memory_eater):
    assert after_memory_eater[0].grade(r"\frac{1}{2}", "0.5").status == "correct"


def test_an_error_is_not_cached(after_memory_eater):
    capped = after_memory_eater[0]
    before = capped.stats()
    assert capped.grade("1", MEMORY_EATER).status in ("error", "timeout")
    after = capped.stats()
    assert (after["dispatched"], after["cache_hits"]) == (before["dispatched"] + 1, before["cache_hits"])


def test_worker_killed_mid_pair_gives_error():
    with Grader(workers=1, timeout_s=30) as grader_:
        grader_.grade(r"\frac{1}{2}", "0.5")
        results = []
        thread = threading.Thread(target=lambda: results.append(grader_.grade("1", HANG)))
        thread.start()
        deadline = time.monotonic() + 30
        while grader_.stats()["dispatched"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        wait_busy(grader_.worker_pids())  # on the pair
        os.kill(grader_.worker_pids()[0], signal.SIGKILL)
        thread.join(timeout=30)
        assert results == [Grade(False, "error", "math_verify")]


def test_grading_works_off_the_main_thread(grader):
    # math-verify's own timeout (signal.alarm) raises off the main thread; ours uses none.
    results = []
    thread = threading.Thread(target=lambda: results.append(grader.grade(r"\frac{\sqrt{2}}{2}", r"\sqrt{2}/2")))
    thread.start()
    thread.join(timeout=30)
    assert results == [Grade(True, "correct", "math_verify")]


# ---- grade_many and the cache ----------------------------------------------------------------------

def test_grade_many_preserves_order(grader):
    pairs = [("x^2", "x^3"), ("42", "42.0"), ("1", None), (r"\frac{1}{2}", "0.5"), ("-3", "3"), ("(1,2)", "(1, 2)")]
    statuses = [grade.status for grade in grader.grade_many(pairs)]
    assert statuses == ["wrong", "correct", "no_answer", "correct", "wrong", "correct"]


def test_grade_many_grades_duplicates_once():
    with Grader(workers=2) as cached:
        pairs = [(r"\frac{1}{2}", "0.5")] * 10 + [(r"\frac{1}{3}", "0.33")] * 10
        cached.grade_many(pairs)
        cached.grade(r"\frac{1}{2}", "0.5")
        assert (cached.stats()["dispatched"], cached.stats()["cache_hits"]) == (2, 1)


def test_without_cache_every_pair_is_graded():
    with Grader(workers=2, cache=False) as uncached:
        uncached.grade_many([(r"\frac{1}{2}", "0.5")] * 6)
        assert uncached.stats()["dispatched"] == 6


# ---- processes ------------------------------------------------------------------------------------

def test_close_leaves_no_process():
    grader_ = Grader(workers=2)
    grader_.grade_many([(r"\frac{1}{2}", "0.5"), ("x^2", "x^3"), (r"2\pi", r"2 \pi")])
    pids = grader_.worker_pids()
    grader_.close()
    assert pids and wait_gone(pids, deadline_s=0.5) == []


def _run_child(body: str) -> subprocess.Popen:
    code = f"import sys\nsys.path.insert(0, {str(REPO_ROOT)!r})\n" + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)


def test_interpreter_exit_without_close_leaves_no_process():
    child = _run_child("""
        from eval.grading.grader import Grader
        grader = Grader(workers=2)
        grader.grade_many([(r"\\frac{1}{2}", "0.5"), ("x^2", "x^3"), (r"2\\pi", r"2 \\pi")])
        print(*grader.worker_pids(), flush=True)
    """)
    output, _ = child.communicate(timeout=60)
    pids = [int(pid) for pid in output.split()]
    assert pids and wait_gone(pids) == []


def test_workers_exit_when_the_parent_is_killed():
    child = _run_child(f"""
        import threading, time
        from eval.grading.grader import Grader
        grader = Grader(workers=2, timeout_s=60)
        grader.grade_many([(r"\\frac{{1}}{{2}}", "0.5"), ("x^2", "x^3")] * 2)
        threading.Thread(target=grader.grade, args=("1", {HANG!r}), daemon=True).start()
        deadline = time.monotonic() + 30
        while grader.stats()["dispatched"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        print(*grader.worker_pids(), flush=True)
        time.sleep(60)
    """)
    pids = [int(pid) for pid in child.stdout.readline().split()]
    wait_busy(pids)  # one worker busy on the hang, the other idle
    child.kill()
    child.wait()
    assert len(pids) == 2 and wait_gone(pids) == []

"""pass@k and maj@k against hand-computed values."""

import pytest

from eval.metrics import k_values, maj_at_k, pass_at_k


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 2 / 5),
    (5, 2, 2, 1 - 3 / 10),         # 1 - C(3,2)/C(5,2)
    (10, 3, 4, 1 - 35 / 210),      # 1 - C(7,4)/C(10,4)
    (4, 0, 2, 0.0),
    (4, 4, 1, 1.0),
    (6, 5, 2, 1.0),                # n - c < k: every pair holds a correct one
])
def test_pass_at_k_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_maj_at_k_exact_over_all_subsets():
    answers = ["7", "7", "3", None]
    correct = [True, True, False, False]
    assert maj_at_k(answers, correct, 4) == 1.0
    # k=1: right only when the one sample is one of the two "7"s.
    assert maj_at_k(answers, correct, 1) == pytest.approx(0.5)
    # k=2, 6 subsets: {7,7} {7,3}x2 {7,None}x2 {3,None}; ties go to the lower index ("7").
    assert maj_at_k(answers, correct, 2) == pytest.approx(5 / 6)


def test_maj_at_k_sampled_estimate_is_close():
    answers = ["1"] * 30 + ["2"] * 20
    correct = [True] * 30 + [False] * 20
    estimate = maj_at_k(answers, correct, 25, draws=400)
    assert 0.8 < estimate < 1.0


def test_k_values_are_powers_of_two_up_to_n():
    assert k_values(1) == [1]
    assert k_values(8) == [1, 2, 4, 8]
    assert k_values(6) == [1, 2, 4, 6]

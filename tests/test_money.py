"""Dollars as users read them: every digit in files, at least three significant digits in reports and logs."""
from __future__ import annotations

from decimal import Decimal

import pytest

from runner import money


@pytest.mark.parametrize("value, text", [(0.0000112, "0.0000112"), (Decimal("0.000000125"), "0.000000125"),
                                         (1234.5, "1234.5"), (0.0, "0.0")])
def test_files_get_every_digit_and_no_exponent(value, text):
    assert money.exact(value) == text


def test_exact_dollars_and_no_price():
    assert money.exact_dollars(0.0004208) == "$0.0004208"
    assert money.exact_dollars(None) == "n/a (no known price)"


@pytest.mark.parametrize("value, text", [
    (1234.5, "$1,234.5000"), (0.01, "$0.0100"), (0.0099, "$0.009900"), (0.000154, "$0.000154"),
    (0.0000112, "$0.0000112"), (0, "$0"), (0.0, "$0"), (None, "n/a"), (float("nan"), "n/a"),
    (-0.5, "$-0.5000"), (-0.00012, "$-0.000120"),  # a refund or a correction keeps its digits too
])
def test_reports_show_at_least_three_significant_digits(value, text):
    assert money.dollars(value) == text


def test_a_mix_of_priced_and_unpriced_calls_says_how_many_have_no_price():
    assert money.dollars_with(0.5) == money.dollars_with(0.5, 0) == "$0.5000"
    assert money.dollars_with(0.5, 3) == "$0.5000 + 3 n/a"
    assert money.dollars_with(None, 3) == "n/a" and money.dollars_with(float("nan")) == "n/a"


def test_log_lines_keep_their_places_and_more_below_a_cent():
    assert money.dollars_to(0.0123, 4) == "$0.0123"
    assert money.dollars_to(0.000011, 4) == "$0.0000110"
    assert money.dollars_to(0.0, 4) == "$0.0000"
    assert money.dollars_to(12.5, 2) == "$12.50"


def test_plot_axis_labels():
    assert money.tick(0) == "$0" and money.tick(0.012345) == "$0.0123" and money.tick(2.0, 1) == "$2"

"""The pure parts of the benchmarks: percentiles, spreads, wrk's report and the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.memory import mapped_file_kb
from bench.report import number, spread_text, table, write_report
from bench.results import Figure, Target
from bench.stats import Spread, percentile
from bench.wrk import lua_string, parse_report


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 4.0
    assert percentile(values, 0.5) == pytest.approx(2.5)
    assert percentile(list(range(1, 101)), 0.99) == pytest.approx(99.01)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.95) == 7.0


@pytest.mark.parametrize(("values", "fraction"), [([], 0.5), ([1.0], 1.5)])
def test_percentile_refuses_nonsense(values: list[float], fraction: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, fraction)


def test_spread_is_median_and_extremes() -> None:
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(median=2.0, low=1.0, high=3.0, rounds=3)


def test_wrk_report_line_is_read_in_milliseconds_with_all_errors() -> None:
    output = (
        "Running 8s test @ http://127.0.0.1:1/\n"
        'WRK_JSON {"requests": 4000, "duration_us": 8000000, "bytes": 1, "p50_us": 1500, '
        '"p90_us": 3000, "p99_us": 9000, "max_us": 12000, "connect": 0, "read": 1, '
        '"write": 0, "status": 2, "timeout": 0}\n'
    )
    result = parse_report(output)
    assert result.requests_per_s == 500.0
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    assert result.errors == 3


def test_wrk_report_without_the_line_fails_loudly() -> None:
    with pytest.raises(ValueError, match="WRK_JSON"):
        parse_report("wrk: connection refused")


def test_lua_string_escapes_everything_but_plain_characters() -> None:
    assert lua_string("Bearer abc") == '"Bearer abc"'
    assert lua_string('{"a"}') == '"\\123\\034a\\034\\125"'
    assert lua_string("é") == '"\\195\\169"'


def test_ratio_and_difference_pair_rounds() -> None:
    figure = Figure("s", "first token", "ms", [110.0, 130.0], "direct", [100.0, 100.0])
    assert figure.ratio is not None
    assert figure.ratio.median == pytest.approx(1.2)
    assert (figure.ratio.low, figure.ratio.high) == (1.1, 1.3)
    assert figure.difference is not None and figure.difference.median == pytest.approx(20.0)


def test_targets_are_checked_on_the_median() -> None:
    fast = Figure("s", "req/s", "req/s", [400.0, 600.0, 700.0], target=Target("value", ">=", 500))
    slow = Figure("s", "p99", "ms", [40.0, 60.0, 70.0], target=Target("value", "<=", 50, "ms"))
    assert fast.met is True
    assert slow.met is False
    assert Figure("s", "n", "", [1.0]).met is None


def test_number_keeps_about_three_figures() -> None:
    assert [number(v) for v in (0, 0.1234, 12.34, 1234.5)] == ["0", "0.12", "12.3", "1,234"]


def test_spread_text_shows_the_range_only_when_there_is_one() -> None:
    assert spread_text(Spread.of([2.0]), "ms") == "2.00 ms"
    assert spread_text(Spread.of([1.0, 2.0, 3.0]), "ms") == "2.00 ms (1.00 to 3.00)"
    assert spread_text(None) == "—"


def test_table_has_a_row_per_figure_under_its_section() -> None:
    figures = [
        Figure("A", "req/s", "req/s", [600.0], "static", [1200.0], Target("value", ">=", 500)),
        Figure("A", "p99", "ms", [80.0], target=Target("value", "<=", 50, "ms")),
        Figure("B", "tokens/s", "tokens/s", [45.0], "direct", [46.0], Target("ratio", ">=", 0.97)),
    ]
    lines = table(figures).splitlines()
    assert lines[2] == "| **A** | | | | | |"
    assert lines[3] == "| req/s | 600 req/s | 1,200 req/s static | 0.50x | >= 500 | yes |"
    assert lines[4] == "| p99 | 80.0 ms | — | — | <= 50 ms | **no** |"
    assert lines[5] == "| **B** | | | | | |"
    assert lines[6].endswith("| 0.98x | ratio >= 0.97x | yes |")


def test_write_report_makes_the_table_the_plots_and_the_json(tmp_path: Path) -> None:
    figures = [Figure("1. Page (x)", "req/s", "req/s", [600.0, 700.0], "static", [900.0, 1000.0])]
    report = write_report(figures, context={"machine": "test"}, raw={"page": 1}, directory=tmp_path)
    assert "| req/s | 650 req/s (600 to 700)" in report.read_text()
    assert (tmp_path / "1-page.png").stat().st_size > 0
    assert '"page": 1' in (tmp_path / "results.json").read_text()


def test_mapped_file_counts_only_that_files_pages() -> None:
    smaps = (
        "7f00-7f10 r--p 00000000 08:01 12 /models/model.gguf\n"
        "Size:               64 kB\n"
        "Rss:                48 kB\n"
        "Pss:                24 kB\n"
        "7f10-7f20 rw-p 00000000 00:00 0 \n"
        "Rss:               100 kB\n"
        "Pss:               100 kB\n"
        "7f20-7f30 r--p 00000000 08:01 12 /models/model.gguf\n"
        "Rss:                 4 kB\n"
        "Pss:                 4 kB\n"
    )
    model = Path("/models/model.gguf")
    assert mapped_file_kb(smaps, model) == 28
    assert mapped_file_kb(smaps, model, "Rss") == 52

"""The table benchmark's scorer (benchmarks/table_score.py) on tables small enough to check by
hand, the markdown table reader, and one real case end to end."""

from __future__ import annotations

from pathlib import Path

import bench_tables
import pytest
from table_score import Expected, Node, score_table, teds, tree_edit_distance

GRID = [
    ["State", "Checks", "Permits"],
    ["Tennessee", "9,509", "120"],
    ["Texas", "21,550", "331"],
    ["Utah", "10,429", "48"],
]


def test_identical_tables_score_one() -> None:
    score = score_table(Expected(GRID), GRID)
    assert (score.f1, score.precision, score.recall) == (1.0, 1.0, 1.0)
    assert score.true_positives == 12
    assert teds([r for r, _ in score.trees[0]], [r for r, _ in score.trees[1]]) == 1.0


def test_merged_rows_lose_their_cells() -> None:
    merged = [GRID[0], [" ".join(r[c] for r in GRID[1:]) for c in range(3)]]
    score = score_table(Expected(GRID), merged)
    assert score.true_positives == 3  # the header only
    assert score.f1 == pytest.approx(2 * 3 / (12 + 6))
    assert teds(GRID, merged) < 0.6


def test_a_cell_in_the_wrong_column_loses_it_and_a_shift_of_every_column_does_not() -> None:
    moved = [row[:] for row in GRID]
    moved[2] = ["Texas", "", "21,550 331"]
    assert score_table(Expected(GRID), moved).true_positives == 10
    # A leading empty column (a converter that starts at the page's left rule) moves nothing.
    shifted = [["", *row] for row in GRID]
    assert score_table(Expected(GRID), shifted).f1 == 1.0


def test_caption_rows_count_against_precision_unless_optional() -> None:
    with_caption = [["Table 1: NICS checks", "", ""], *GRID]
    plain = score_table(Expected(GRID), with_caption)
    assert plain.recall == 1.0
    assert plain.precision == pytest.approx(12 / 13)
    optional = Expected(with_caption, optional=frozenset({0}))
    assert score_table(optional, with_caption).f1 == 1.0
    assert score_table(optional, GRID).f1 == 1.0


def test_a_header_split_into_lines_matches_a_whole_header_and_a_split_one() -> None:
    # camelot's stream output: one row per text line of the header.
    split = [["Medical &", "Family"], ["Public", "Welfare"], ["Health", ""], ["1.5", "2"]]
    expected = Expected(split, block=(0, 2))
    whole = [["Medical & Public Health", "Family Welfare"], ["1.5", "2"]]
    assert score_table(expected, whole).f1 == 1.0
    assert score_table(expected, split).f1 == 1.0
    # Lines split anywhere join to the same header; cells run together do not.
    other_split = [["Medical & Public", "Family Welfare"], ["Health", ""], ["1.5", "2"]]
    assert score_table(expected, other_split).f1 == 1.0
    run_together = [["Medical & Public Health Family Welfare", ""], ["1.5", "2"]]
    assert score_table(expected, run_together).f1 == pytest.approx(2 * 2 / (4 + 3))


def test_spanning_text_repeated_or_left_empty_scores_alike() -> None:
    expected = Expected([["Plan", "", "Total"], ["Revenue", "Capital", ""], ["1", "2", "3"]])
    repeated = [["Plan", "Plan", "Total"], ["Revenue", "Capital", ""], ["1", "2", "3"]]
    assert score_table(expected, repeated).f1 == 1.0


def test_cell_keys_ignore_spaces_leaders_and_markup() -> None:
    expected = Expected([["TREATED WITHTHE MANURE", "breastfed9 ......"], ["a", "b"]])
    predicted = [["**Treated with<br>the manure**", "breastfed 9"], ["a", "b"]]
    assert score_table(expected, predicted).f1 == 1.0


def test_teds_known_values() -> None:
    assert teds([["a", "b"]], [["a"]]) == pytest.approx(1 - 1 / 4)  # one td deleted of 4 nodes
    assert teds([["ab"]], [["ac"]]) == pytest.approx(1 - 0.5 / 3)  # rename: Levenshtein 1 of 2
    # Two rows made one: delete a tr, and b must be deleted and inserted (it changes parent).
    assert teds([["a"], ["b"]], [["a", "b"]]) == pytest.approx(1 - 3 / 5)
    assert teds([["a"]], []) == pytest.approx(1 - 2 / 3)


def test_tree_edit_distance_of_zhang_and_shasha_s_example() -> None:
    def tree(label: str, *children: Node) -> Node:
        return Node(label, children=list(children))

    one = tree("f", tree("d", tree("a"), tree("c", tree("b"))), tree("e"))
    two = tree("f", tree("c", tree("d", tree("a"), tree("b"))), tree("e"))
    assert tree_edit_distance(one, two, lambda a, b: float(a.label != b.label)) == 2


def test_markdown_tables_continue_over_a_page_marker_without_a_new_header() -> None:
    pages = bench_tables.split_pages(
        "intro\n\n| A | B |\n|---|---|\n| 1 | 2 |\n\n<!-- page: 2 -->\n\n| 3 | 4 |\n\n"
        "text\n\n| C | D |\n|---|---|\n| 5 | 6 \\| 7 |\n"
    )
    first, second = bench_tables.markdown_tables(pages)
    assert first.rows == [["A", "B"], ["1", "2"], ["3", "4"]]
    assert first.pages == [1, 1, 2]
    assert second.rows == [["C", "D"], ["5", "6 \\| 7"]]


def test_a_real_case_end_to_end(tmp_path: Path) -> None:
    """camelot's two small ruled grids on one page: both converters' tables are found and
    scored against the expected cells."""
    cases = [c for c in bench_tables.camelot_cases() if c.name.startswith("camelot-two-small")]
    assert len(cases) == 2
    for run in (bench_tables.run_athenaeum, bench_tables.run_find_tables):
        converted = run(cases[0].pdf, tmp_path)
        assert converted.pages == 1
        for case in cases:
            score = bench_tables.score_case(case, converted)
            assert score.f1 == 1.0
            assert score.teds == 1.0
            assert score.text == 1.0


def test_a_table_repeating_its_header_after_a_page_marker_goes_on() -> None:
    from benchmarks.bench_tables import markdown_tables

    header = "| Date | Company |\n|---|---|\n"
    pages = [
        (1, header + "| 1/1 | Acme |\n"),
        (2, "<!-- page: 2 -->\n\n" + header + "| 1/2 | Bolt |\n"),
    ]
    (table,) = markdown_tables(pages)
    assert table.rows == [["Date", "Company"], ["1/1", "Acme"], ["1/2", "Bolt"]]
    assert table.pages == [1, 1, 2]
    # A different header after the marker is another table.
    other = [(1, header + "| 1/1 | Acme |\n"), (2, "<!-- page: 2 -->\n\n| A | B |\n|---|---|\n")]
    assert len(markdown_tables(other)) == 2

"""Tables 3 and 4 of the core paper rebuilt from its per-photo outputs; the generic table code."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from detector.reporting import paper000 as p
from detector.reporting.tables import (
    ORDERS,
    BreakdownTable,
    breakdown_table,
    format_table,
    format_table5,
    round_half_up,
    table5,
    table_to_dict,
)

HALF_UNIT = 0.5e-4  # half a unit of the paper's last printed digit (4 decimals)
EPS = 1e-12  # float noise on exact ties

TABLES = p.reproduce_tables()
PRINTED = {3: p.PRINTED_TABLE3, 4: p.PRINTED_TABLE4}


def _cells(number: int, table: BreakdownTable):
    """(row index, column, reproduced, printed) for every cell of one table."""
    for r, (row, printed) in enumerate(zip(table.rows, PRINTED[number], strict=True)):
        for k, (got, want) in enumerate(
            zip(table.per_frame[row.label], printed.per_photo, strict=True), start=1
        ):
            yield r, k, got, want
        yield r, "average", row.average, printed.average
        yield r, "median", row.median, printed.median


ALL_CELLS = [
    pytest.param(number, r, col, got, want, id=f"table{number}-row{r}-{col}")
    for number, table in zip((3, 4), TABLES, strict=True)
    for r, col, got, want in _cells(number, table)
]


@pytest.mark.parametrize(("number", "row", "col", "got", "want"), ALL_CELLS)
def test_every_cell_within_half_a_unit_of_the_paper(number, row, col, got, want):
    assert abs(got - want) <= HALF_UNIT + EPS


def test_cell_count():
    assert len(ALL_CELLS) == 2 * 4 * (6 + 2)


def _exact(number: int, row: int, col: int | str) -> Fraction:
    """The cell's exact value computed in rationals from the printed per-photo outputs."""
    videos = {3: p.VIDEO1_OUTPUTS, 4: p.VIDEO2_OUTPUTS}[number]
    scores = {m: [Fraction(str(x)) for x in xs] for m, xs in videos.items()}
    models = [p.IRV2, p.XCEPTION]
    if row < 2:
        weights = {models[row]: Fraction(1)}
    else:
        weights = {m: Fraction(str(w)) for m, w in p.PAPER_WEIGHTINGS[row - 2].items()}

    def agg(xs: list[Fraction], how: str) -> Fraction:
        s = sorted(xs)
        if how == "average":
            return sum(s, Fraction(0)) / len(s)
        return (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2  # six photos

    if isinstance(col, int):
        return sum((w * scores[m][col - 1] for m, w in weights.items()), Fraction(0))
    return sum((w * agg(scores[m], col) for m, w in weights.items()), Fraction(0))


def test_ties_are_exactly_the_listed_cells():
    found = []
    for number, table in zip((3, 4), TABLES, strict=True):
        for r, col, _, want in _cells(number, table):
            exact = _exact(number, r, col)
            if (exact * 10**5).denominator == 1 and (exact * 10**5).numerator % 10 == 5:
                found.append((number, r, col, float(exact), want))
    assert tuple(found) == p.TIES
    # The printed value is one of the two neighbours of each tie.
    for _, _, _, exact, printed in p.TIES:
        assert printed in (round(exact - 0.00005, 4), round(exact + 0.00005, 4))


def test_reproduced_cells_match_the_exact_rational_values():
    for number, table in zip((3, 4), TABLES, strict=True):
        for r, col, got, _ in _cells(number, table):
            assert got == pytest.approx(float(_exact(number, r, col)), abs=1e-12)


def test_formatted_cells_match_the_paper_except_ties_rounded_the_other_way():
    """Half-up printing reproduces every printed cell but the tie the paper rounded down."""
    ties = {(n, r, c): printed for n, r, c, _, printed in p.TIES}
    mismatches = []
    for number, table in zip((3, 4), TABLES, strict=True):
        for r, col, got, want in _cells(number, table):
            if round_half_up(got) != f"{want:.4f}":
                mismatches.append((number, r, col))
    assert mismatches == [(3, 2, 1)]  # 0.27765: half-up 0.2777, paper 0.2776
    assert (3, 2, 1) in ties


def test_rows_labels_weights_and_which_model_gets_0_6():
    t3 = TABLES[0]
    assert [row.label for row in t3.rows] == [
        "Inception-ResNet-v2",
        "Xception",
        "Ensemble 0.5/0.5",
        "Ensemble Inception-ResNet-v2 0.6 / Xception 0.4",
    ]
    assert t3.rows[0].weights is None
    assert t3.rows[3].weights == pytest.approx({p.IRV2: 0.6, p.XCEPTION: 0.4})
    assert t3.order == "aggregate_then_combine"
    assert t3.frame_count == 6
    assert t3.title == p.TABLE3_TITLE


def test_table3_median_the_other_way_is_0_3530():
    other = p.reproduce_tables("combine_then_aggregate")[0]
    ens = other.rows[2]
    assert round_half_up(ens.median) == "0.3530"
    assert abs(ens.median - p.TABLE3_MEDIAN_COMBINE_THEN_AGGREGATE) <= HALF_UNIT
    assert TABLES[0].rows[2].median == pytest.approx(0.3241, abs=HALF_UNIT)
    # The mean is linear: both orders give the same Average; per-frame columns are identical.
    for a, b in zip(TABLES[0].rows, other.rows, strict=True):
        assert a.average == pytest.approx(b.average, abs=1e-15)
    assert other.per_frame == TABLES[0].per_frame


def test_orders_are_labelled_plainly():
    assert "paper" in ORDERS["aggregate_then_combine"]
    assert "paper" not in ORDERS["combine_then_aggregate"]
    assert ORDERS["aggregate_then_combine"] in format_table(TABLES[0])


def test_format_table_shows_the_paper_layout():
    text = format_table(TABLES[1])
    assert text.splitlines()[0] == p.TABLE4_TITLE
    assert "Average" in text and "Median" in text
    line = next(x for x in text.splitlines() if x.startswith("Ensemble Inception-ResNet-v2 0.6"))
    assert line.split()[-8:] == [
        "0.8489",
        "0.6980",
        "0.6826",
        "0.7408",
        "0.6310",
        "0.7778",
        "0.7298",
        "0.7486",
    ]


def test_table_to_dict_is_json_ready():
    d = table_to_dict(TABLES[0])
    assert json.loads(json.dumps(d)) == d
    assert d["order_label"] == ORDERS["aggregate_then_combine"]
    assert [r["kind"] for r in d["rows"]] == ["model", "model", "ensemble", "ensemble"]
    assert len(d["rows"][2]["per_frame"]) == 6


# --- generic breakdown_table ------------------------------------------------------------------


def test_one_frame():
    t = breakdown_table("one", {"a": [0.2], "b": [0.6]}, [{"a": 1, "b": 1}])
    assert t.frame_count == 1
    assert [r.label for r in t.rows] == ["a", "b", "Ensemble 0.5/0.5"]
    ens = t.rows[2]
    assert ens.average == pytest.approx(0.4) and ens.median == pytest.approx(0.4)
    assert t.per_frame["Ensemble 0.5/0.5"] == pytest.approx((0.4,))
    assert "0.4000" in format_table(t)


def test_many_frames_and_both_orders():
    a = [i / 100 for i in range(101)]  # 0.00 .. 1.00
    b = [1 - x**2 for x in a]
    t1 = breakdown_table("many", {"a": a, "b": b}, [{"a": 3, "b": 1}])
    t2 = breakdown_table("many", {"a": a, "b": b}, [{"a": 3, "b": 1}], "combine_then_aggregate")
    assert t1.frame_count == 101
    assert t1.rows[2].label == "Ensemble a 0.75 / b 0.25"
    # aggregate then combine: 0.75 * median(a) + 0.25 * median(b) = 0.75 * 0.5 + 0.25 * 0.75
    assert t1.rows[2].median == pytest.approx(0.5625)
    # combine then aggregate: median of 0.75 x + 0.25 (1 - x^2) over the grid
    per_frame = sorted(0.75 * x + 0.25 * (1 - x**2) for x in a)
    assert t2.rows[2].median == pytest.approx(per_frame[50])
    assert t1.rows[2].average == pytest.approx(t2.rows[2].average)
    header = format_table(t1, max_frame_columns=6).splitlines()[3].split()
    assert header[3:] == ["1", "2", "3", "...", "99", "100", "101", "Average", "Median"]
    assert len(format_table(t1).splitlines()[3].split()) == 3 + 101 + 2


def test_three_models_and_subset_weighting():
    scores = {"x": [0.1, 0.2, 0.9, 0.4], "y": [0.3, 0.3, 0.3, 0.3], "z": [1.0, 0.0, 0.5, 0.5]}
    t = breakdown_table("three", scores, [{"x": 1, "y": 1, "z": 1}, {"x": 2, "z": 2}])
    assert [r.label for r in t.rows] == [
        "x",
        "y",
        "z",
        "Ensemble 0.3333/0.3333/0.3333",
        "Ensemble x 0.5 / z 0.5",
    ]
    assert t.rows[4].weights == {"x": 0.5, "y": 0.0, "z": 0.5}
    assert t.rows[1].median == pytest.approx(0.3)
    # x median = 0.3, z median = 0.5; mean of x = 0.4, y = 0.3, z = 0.5
    assert t.rows[3].median == pytest.approx((0.3 + 0.3 + 0.5) / 3)
    assert t.rows[3].average == pytest.approx(0.4)
    assert t.per_frame["Ensemble x 0.5 / z 0.5"] == pytest.approx((0.55, 0.1, 0.7, 0.45))
    assert json.loads(json.dumps(table_to_dict(t)))["frame_count"] == 4


def test_no_weightings_gives_model_rows_only():
    t = breakdown_table("models", {"a": [0.1, 0.3]}, [])
    assert [r.label for r in t.rows] == ["a"]
    assert t.rows[0].median == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("scores", "weightings", "order", "match"),
    [
        ({"a": [0.1], "b": [0.2]}, [{"c": 1.0}], "aggregate_then_combine", "unknown models"),
        ({"a": [0.1], "b": [0.2]}, [{"a": -0.1, "b": 1}], "aggregate_then_combine", "negative"),
        ({"a": [0.1], "b": [0.2]}, [{"a": 0, "b": 0}], "aggregate_then_combine", "sum to zero"),
        ({"a": [0.1], "b": [0.2]}, [{}], "aggregate_then_combine", "sum to zero"),
        ({"a": [0.1, 0.2], "b": [0.2]}, [], "aggregate_then_combine", "unequal frame counts"),
        ({"a": [], "b": []}, [], "aggregate_then_combine", "no frames"),
        ({}, [], "aggregate_then_combine", "no models"),
        ({"a": [float("nan")]}, [], "aggregate_then_combine", "finite"),
        ({"a": [0.1]}, [{"a": math.inf}], "aggregate_then_combine", "finite"),
        ({"a": [0.1]}, [], "sideways", "unknown order"),
    ],
)
def test_bad_input_raises_value_error(scores, weightings, order, match):
    with pytest.raises(ValueError, match=match):
        breakdown_table("bad", scores, weightings, order or "aggregate_then_combine")


# --- rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "text"),
    [(0.27765, "0.2777"), (0.62935, "0.6294"), (0.63705, "0.6371"), (0.34675, "0.3468"),
     (0.32294, "0.3229"), (1.0, "1.0000"), (0.0, "0.0000")],
)  # fmt: skip
def test_round_half_up(x, text):
    assert round_half_up(x) == text


# --- Table 5 ----------------------------------------------------------------------------------


def _synthetic():
    """Four videos, two models, dyadic scores (exact in binary); hand-computed below."""
    return [
        # fake. a mean .625 median .75; b mean .25 median .25. 0.5/0.5: mean .4375 (real),
        # median .5 either order (per frame .5 .5 .5 .25) -> fake since >= .5. b only: .25 (real).
        (1, {"a": [0.75, 0.75, 0.75, 0.25], "b": [0.25, 0.25, 0.25, 0.25]}),
        # fake. Every score >= .5 in every setting.
        (1, {"a": [0.875, 0.625], "b": [0.75, 0.625]}),
        # real. Every score < .5.
        (0, {"a": [0.125], "b": [0.25]}),
        # real. a mean .4375 median .25; b mean .5 median .375. 0.5/0.5: mean .46875 (real),
        # median .3125 either order (per frame .25 .25 .375 1). b only: mean .5 (fake), median
        # .375 (real).
        (0, {"a": [0.25, 0.25, 0.25, 1.0], "b": [0.25, 0.25, 0.5, 1.0]}),
    ]


def test_table5_hand_computed():
    rows = table5(_synthetic(), [{"a": 1, "b": 1}, {"b": 1}])
    assert len(rows) == 2 * 2 * 2
    assert [(r.aggregation, r.order) for r in rows[:4]] == [
        ("mean", "aggregate_then_combine"),
        ("mean", "combine_then_aggregate"),
        ("median", "aggregate_then_combine"),
        ("median", "combine_then_aggregate"),
    ]
    assert all(r.n == 4 for r in rows)
    got = [(r.accuracy, r.tpr, r.tnr) for r in rows]
    assert got == [
        (0.75, 0.5, 1.0),  # 0.5/0.5 mean: video 0 wrong
        (0.75, 0.5, 1.0),
        (1.0, 1.0, 1.0),  # 0.5/0.5 median: all right
        (1.0, 1.0, 1.0),
        (0.5, 0.5, 0.5),  # b only, mean: videos 0 and 3 wrong
        (0.5, 0.5, 0.5),
        (0.75, 0.5, 1.0),  # b only, median: video 0 wrong
        (0.75, 0.5, 1.0),
    ]
    assert rows[0].weights == {"a": 0.5, "b": 0.5}
    assert rows[4].weights == {"a": 0.0, "b": 1.0}
    text = format_table5(rows)
    assert "Accuracy" in text and "Ensemble 0.5/0.5" in text and "Ensemble b 1" in text


def test_table5_orders_differ_for_the_median():
    # a median .875, b median .125 -> aggregate then combine: .5 (fake, right);
    # per-frame ensembles (.4375, .0625, .875) -> median .4375 (real, wrong).
    videos = [(1, {"a": [0.875, 0.0, 0.875], "b": [0.0, 0.125, 0.875]})]
    rows = table5(videos, [{"a": 1, "b": 1}], aggregations=("median",))
    assert [(r.order, r.accuracy) for r in rows] == [
        ("aggregate_then_combine", 1.0),
        ("combine_then_aggregate", 0.0),
    ]
    assert math.isnan(rows[0].tnr) and rows[0].tpr == 1.0


def test_table5_threshold_and_paper_videos():
    rows = table5(p.paper_videos(), p.PAPER_WEIGHTINGS)
    assert len(rows) == 2 * 2 * 2
    assert all(r.accuracy == 1.0 for r in rows)
    strict = table5(p.paper_videos(), p.PAPER_WEIGHTINGS, threshold=0.8)
    assert all(r.accuracy == 0.5 and r.tpr == 0.0 and r.tnr == 1.0 for r in strict)


@pytest.mark.parametrize(
    ("videos", "kwargs", "match"),
    [
        ([], {}, "no videos"),
        ([(2, {"a": [0.1]})], {}, "label"),
        ([(1, {"a": [0.1]}), (0, {"b": [0.1]})], {}, "models"),
        ([(1, {"a": [0.1]})], {"aggregations": ("max",)}, "aggregation"),
        ([(1, {"a": [0.1]})], {"orders": ("both",)}, "order"),
        ([(1, {"a": [0.1]})], {"threshold": math.nan}, "threshold"),
    ],
)
def test_table5_bad_input(videos, kwargs, match):
    with pytest.raises(ValueError, match=match):
        table5(videos, [{"a": 1}], **kwargs)


def test_weightings_that_normalise_alike_make_one_row():
    from detector.reporting.tables import breakdown_table

    t = breakdown_table("t", {"a": [0.1], "b": [0.2]}, [{"a": 1, "b": 1}, {"a": 2, "b": 2}])
    assert [r.label for r in t.rows] == ["a", "b", "Ensemble 0.5/0.5"]

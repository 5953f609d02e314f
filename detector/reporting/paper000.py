"""The numbers printed in the core paper, and Tables 3 and 4 rebuilt from them.

Paper: A. Latipova and M. Yadryshnikova, "Development of Neural Networks for Deepfake Recognition"
(``../shared/papers/000_f62dbf8309b2ce2e.txt``), section "Accuracy Metric for Video", Tables 3-5.

Two videos, each split into six photos (one frame per second, MTCNN face crops), were scored by
Inception-ResNet-v2 and Xception (the paper's tables misspell it "Exception"). Video1 is real
(class 0), Video2 is a deepfake (class 1). Two ensembles are a weighted sum of the two networks:
0.5/0.5, and 0.6 for **Inception-ResNet-v2** with 0.4 for Xception ("weight for Inception is 0.6
and for Exception is 0.4").

The paper's prose says a final value closer to 1 means "real", but its tables show the real
Video1 near 0.3 and the deepfake Video2 near 0.7, so the printed outputs behave as ``p_fake``
(higher = more likely fake), the project's convention; they are used as such here.

Only the per-photo outputs below are inputs. :func:`reproduce_tables` recomputes every other cell
(ensemble per-photo scores, Average, Median) with :func:`detector.reporting.tables.breakdown_table`; the
printed cells are kept only so the tests can compare. The paper's ensemble Average/Median are the
weighted combination of each model's Average/Median ("aggregate frames, then combine models").

Ties: the paper printed its inputs to 4 decimals, so some recomputed cells land exactly on a
half-unit (e.g. (0.3097 + 0.2456) / 2 = 0.27765, printed 0.2776) and may print either way; they are
listed in :data:`TIES`.

Table 5 (accuracy on the paper's test set) cannot be recomputed: the paper gives neither the test
videos nor their per-frame outputs. :data:`PRINTED_TABLE5` transcribes it as reference data; the
text of the paper available here shows three rows (the 0.6/0.4 median row is absent).
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.reporting.tables import DEFAULT_ORDER, BreakdownTable, breakdown_table

IRV2 = "Inception-ResNet-v2"
XCEPTION = "Xception"

# Per-photo outputs exactly as printed (Tables 3 and 4, rows "Inception-Resnet-v2" and
# "Exception"), photos 1-6.
VIDEO1_LABEL = 0
VIDEO1_OUTPUTS: dict[str, tuple[float, ...]] = {
    IRV2: (0.3097, 0.2997, 0.4552, 0.4290, 0.3269, 0.0793),
    XCEPTION: (0.2456, 0.5557, 0.4137, 0.1276, 0.6725, 0.2461),
}
VIDEO2_LABEL = 1
VIDEO2_OUTPUTS: dict[str, tuple[float, ...]] = {
    IRV2: (0.8866, 0.7541, 0.8954, 0.5994, 0.6067, 0.8239),
    XCEPTION: (0.7923, 0.6139, 0.3633, 0.9530, 0.6674, 0.7086),
}

# The paper's two ensemble settings; Inception-ResNet-v2 gets 0.6 in the second.
PAPER_WEIGHTINGS: tuple[dict[str, float], ...] = (
    {IRV2: 0.5, XCEPTION: 0.5},
    {IRV2: 0.6, XCEPTION: 0.4},
)

TABLE3_TITLE = "Table 3. Video1 output analysis (class 0)"
TABLE4_TITLE = "Table 4. Video2 output analysis (class 1)"


@dataclass(frozen=True)
class PrintedRow:
    """One row of Table 3 or 4 as printed: the paper's label, photos 1-6, Average, Median."""

    paper_label: str
    per_photo: tuple[float, ...]
    average: float
    median: float


# Rows in the paper's order: IRv2, Xception, ensemble 0.5/0.5, ensemble IRv2 0.6 / Xception 0.4.
PRINTED_TABLE3: tuple[PrintedRow, ...] = (
    PrintedRow(
        "Inception-Resnet-v2", (0.3097, 0.2997, 0.4552, 0.4290, 0.3269, 0.0793), 0.3166, 0.3183
    ),
    PrintedRow("Exception", (0.2456, 0.5557, 0.4137, 0.1276, 0.6725, 0.2461), 0.3769, 0.3299),
    PrintedRow(
        "Ensemble (weight for both is 0.5)",
        (0.2776, 0.4277, 0.4345, 0.2783, 0.4997, 0.1627),
        0.3468,
        0.3241,
    ),
    PrintedRow(
        "Ensemble (weight for Inception is 0.6 and for Exception is 0.4)",
        (0.2841, 0.4021, 0.4386, 0.3084, 0.4651, 0.1460),
        0.3407,
        0.3229,
    ),
)
PRINTED_TABLE4: tuple[PrintedRow, ...] = (
    PrintedRow(
        "Inception-Resnet-v2", (0.8866, 0.7541, 0.8954, 0.5994, 0.6067, 0.8239), 0.7610, 0.7890
    ),
    PrintedRow("Exception", (0.7923, 0.6139, 0.3633, 0.9530, 0.6674, 0.7086), 0.6831, 0.6880),
    PrintedRow(
        "Ensemble (weight for both is 0.5)",
        (0.8395, 0.6840, 0.6294, 0.7762, 0.6371, 0.7663),
        0.7221,
        0.7385,
    ),
    PrintedRow(
        "Ensemble (weight for Inception is 0.6 and for Exception is 0.4)",
        (0.8489, 0.6980, 0.6826, 0.7408, 0.6310, 0.7778),
        0.7298,
        0.7486,
    ),
)

# Cells whose exact value from the printed inputs is a half-unit tie at the 4th decimal:
# (table, row index, column: photo number or "average"/"median", exact value, printed value).
# All are in the 0.5/0.5 ensemble row; the paper rounded 0.27765 down and the others up.
TIES: tuple[tuple[int, int, int | str, float, float], ...] = (
    (3, 2, 1, 0.27765, 0.2776),
    (3, 2, 3, 0.43445, 0.4345),
    (3, 2, "average", 0.34675, 0.3468),
    (4, 2, 1, 0.83945, 0.8395),
    (4, 2, 3, 0.62935, 0.6294),
    (4, 2, 5, 0.63705, 0.6371),
    (4, 2, 6, 0.76625, 0.7663),
    (4, 2, "average", 0.72205, 0.7221),
)

# The 0.5/0.5 ensemble's Table 3 Median computed the other way (median of per-frame ensemble
# scores): (0.2783 + 0.4277) / 2.
TABLE3_MEDIAN_COMBINE_THEN_AGGREGATE = 0.3530


@dataclass(frozen=True)
class PrintedTable5Row:
    """One row of the paper's Table 5 ("Accuracy metrics for test dataset"), as printed."""

    setting: str
    weights: dict[str, float]
    aggregation: str
    accuracy: float


# The paper's numbers, not ours: accuracy on its test set (not reproducible here).
PRINTED_TABLE5: tuple[PrintedTable5Row, ...] = (
    PrintedTable5Row(
        "Ensemble (weight for both is 0.5) with average aggregation function",
        {IRV2: 0.5, XCEPTION: 0.5},
        "mean",
        0.9105,
    ),
    PrintedTable5Row(
        "Ensemble (weight for both is 0.5) with median aggregation function",
        {IRV2: 0.5, XCEPTION: 0.5},
        "median",
        0.9243,
    ),
    PrintedTable5Row(
        "Ensemble (weight for Inception is 0.6 and for Exception is 0.4) with average "
        "aggregation function",
        {IRV2: 0.6, XCEPTION: 0.4},
        "mean",
        0.8986,
    ),
)


def reproduce_tables(order: str = DEFAULT_ORDER) -> list[BreakdownTable]:
    """Tables 3 and 4 recomputed from the paper's per-photo outputs.

    Args:
        order: a key of :data:`detector.reporting.tables.ORDERS`; the paper's order by default.
    """
    return [
        breakdown_table(TABLE3_TITLE, VIDEO1_OUTPUTS, PAPER_WEIGHTINGS, order),
        breakdown_table(TABLE4_TITLE, VIDEO2_OUTPUTS, PAPER_WEIGHTINGS, order),
    ]


def paper_videos() -> list[tuple[int, dict[str, tuple[float, ...]]]]:
    """The paper's two example videos as ``(label, per_model_scores)`` for :func:`table5`."""
    return [(VIDEO1_LABEL, VIDEO1_OUTPUTS), (VIDEO2_LABEL, VIDEO2_OUTPUTS)]

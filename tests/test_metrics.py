"""Metrics against a small example computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mnistkit.tools.report.metrics import classification_metrics, classification_report, confusion_matrix

# 3 classes. true: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])


def test_confusion_matrix_by_hand():
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_metrics_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: P = 2/2, R = 2/3; class 1: P = 1/2, R = 1/2; class 2: P = 1/2, R = 1/1
    p = [r["precision"] for r in m["per_class"]]
    r = [r["recall"] for r in m["per_class"]]
    f = [r["f1"] for r in m["per_class"]]
    assert p == pytest.approx([1.0, 0.5, 0.5])
    assert r == pytest.approx([2 / 3, 0.5, 1.0])
    assert f == pytest.approx([0.8, 0.5, 2 / 3])
    assert m["macro_avg"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_avg"]["recall"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1.0) / 6)
    assert [row["support"] for row in m["per_class"]] == [3, 2, 1]


def test_absent_class_gives_zero_not_nan():
    m = classification_metrics(np.array([0, 0]), np.array([0, 1]), 3)
    assert m["per_class"][2]["precision"] == 0.0 and m["per_class"][2]["f1"] == 0.0


def test_report_mentions_every_class():
    text = classification_report(classification_metrics(Y_TRUE, Y_PRED, 3))
    assert "accuracy" in text and "weighted avg" in text and text.count("\n") > 8

"""Classification metrics in plain numpy (no TensorFlow, no scikit-learn)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages, confusion matrix.

    Returns:
        A JSON-ready dict.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = _safe_div(tp, cm.sum(axis=0).astype(np.float64))
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    total = support.sum()
    weights = support / total if total else support

    def avg(w: np.ndarray) -> dict:
        return {"precision": float(precision @ w), "recall": float(recall @ w), "f1": float(f1 @ w)}

    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "count": int(total),
        "per_class": [
            {"class": c, "precision": float(precision[c]), "recall": float(recall[c]),
             "f1": float(f1[c]), "support": int(support[c])}
            for c in range(num_classes)
        ],
        "macro_avg": avg(np.full(num_classes, 1.0 / num_classes)),
        "weighted_avg": avg(weights),
        "confusion_matrix": cm.tolist(),
    }


def classification_report(metrics: dict) -> str:
    """Render ``classification_metrics`` output as a fixed-width text report."""
    lines = [f"{'class':>12} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for row in metrics["per_class"]:
        lines.append(f"{row['class']:>12} {row['precision']:9.4f} {row['recall']:9.4f} {row['f1']:9.4f} {row['support']:8d}")
    lines.append("")
    lines.append(f"{'accuracy':>12} {'':>9} {'':>9} {metrics['accuracy']:9.4f} {metrics['count']:8d}")
    for key in ("macro_avg", "weighted_avg"):
        a = metrics[key]
        lines.append(f"{key.replace('_', ' '):>12} {a['precision']:9.4f} {a['recall']:9.4f} {a['f1']:9.4f} {metrics['count']:8d}")
    cm = np.asarray(metrics["confusion_matrix"])
    lines += ["", "confusion matrix (rows = true, columns = predicted):",
              "      " + " ".join(f"{c:>5}" for c in range(cm.shape[1]))]
    lines += [f"{r:>5} " + " ".join(f"{v:>5}" for v in cm[r]) for r in range(cm.shape[0])]
    return "\n".join(lines)

"""``Prediction``: what ``Classifier.classify`` returns for one image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """The classification of one image.

    Attributes:
        label: the predicted digit (0-9).
        confidence: its probability.
        probabilities: the probability of each digit 0-9.
        top_k: the k most likely digits as (label, probability), most likely first.
        source: the file the image came from, or its index in the batch.
    """

    label: int
    confidence: float
    probabilities: tuple[float, ...]
    top_k: tuple[tuple[int, float], ...]
    source: str | int | None = None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {
            "source": self.source,
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [[label, p] for label, p in self.top_k],
            "probabilities": list(self.probabilities),
        }


def predictions(proba: np.ndarray, top_k: int, sources: list) -> list[Prediction]:
    """Turn a probability matrix (N, 10) into N Predictions (ties go to the lower digit)."""
    order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
    out = []
    for row, idx, src in zip(proba.tolist(), order.tolist(), sources):
        top = tuple((int(i), float(row[i])) for i in idx)
        out.append(Prediction(label=top[0][0], confidence=top[0][1],
                              probabilities=tuple(float(p) for p in row), top_k=top, source=src))
    return out

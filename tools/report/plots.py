"""PNG charts for training runs and reports (matplotlib, Agg backend, atomic writes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistkit.models.artifacts import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def training_curves(history: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, training vs validation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=(prefix or "train_").rstrip("_"), ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "training curves")
    return save_figure(fig, path)


def confusion_heatmap(cm: np.ndarray, path: str | Path, title: str = "") -> Path:
    """10x10 confusion matrix with counts in the cells (log colour scale)."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    im = ax.imshow(cm + 1, cmap="Blues", norm=LogNorm())
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 3 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    fig.colorbar(im, ax=ax, fraction=0.046, label="count + 1 (log)")
    return save_figure(fig, path)


def misclassified_grid(images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, path: str | Path,
                       limit: int = 36, title: str = "") -> Path:
    """A grid of misclassified test digits, most confident mistakes first, with true/predicted labels."""
    plt = _pyplot()
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    cols = 9
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, idx in zip(axes.flat, wrong):
        ax.imshow(images[idx], cmap="gray")
        ax.set_title(f"#{idx}\n{y_true[idx]}→{pred[idx]} ({probs[idx, pred[idx]]:.0%})", fontsize=7)
    fig.suptitle(title or f"misclassified test digits (true→predicted), {len(np.flatnonzero(pred != y_true))} in all", fontsize=9)
    return save_figure(fig, path)


def flipped_gallery(images: np.ndarray, labels: np.ndarray, source_pred: np.ndarray, artifact_pred: np.ndarray,
                    indices: list[int], path: str | Path, title: str = "", limit: int = 40) -> Path:
    """Test digits whose label the exported file changed: true / Keras / exported label on each."""
    plt = _pyplot()
    shown = list(indices)[:limit]
    cols = min(10, max(len(shown), 1))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.55 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, shown):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"#{i}\n{labels[i]} / {source_pred[i]} / {artifact_pred[i]}", fontsize=7)
    if not shown:
        axes.flat[0].text(0.5, 0.5, "no label flipped", ha="center", va="center")
    fig.suptitle((title + "\n" if title else "") + "true / Keras / exported label", fontsize=9, y=1.04)
    return save_figure(fig, path)


def accuracy_grid(values: np.ndarray, rows: list[str], cols: list[str], path: str | Path, title: str = "") -> Path:
    """Accuracy heatmap (rows x columns, values in [0, 1]) with the percentage in each cell."""
    plt = _pyplot()
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 2.4, 0.36 * len(rows) + 1.4))
    im = ax.imshow(values, cmap="RdYlGn", vmin=0.8, vmax=1.0, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{100 * values[i, j]:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title or "accuracy")
    fig.colorbar(im, ax=ax, fraction=0.046, label="accuracy (clipped at 80%)")
    return save_figure(fig, path)

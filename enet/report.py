"""Reports: plots (PNG, matplotlib's Agg backend) and tables (rich, markdown, CSV).

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written report.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .fileio import atomic_write  # noqa: E402


def save_figure(fig, path: Path) -> None:
    try:
        atomic_write(
            path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"), mode="wb"
        )
    finally:
        plt.close(fig)


def confusion_plot(matrix: list[list[int]], classes: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix (true class per row), counts written in the cells."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        int(m[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    save_figure(fig, path)

"""The learning task both sides share: least squares on synthetic data."""

import numpy as np

# The model every client's data is drawn from; the server checks it was learnt.
TRUE_WEIGHTS = np.array([2.0, -3.0, 0.5])
FEATURES = TRUE_WEIGHTS.shape[0]
EXAMPLES_PER_PARTITION = 64


def initial_weights() -> np.ndarray:
    return np.zeros(FEATURES)


def load_partition(partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic data for one client; partitions differ, the model does not."""
    rng = np.random.default_rng(1000 + partition_id)
    x = rng.normal(size=(EXAMPLES_PER_PARTITION, FEATURES))
    noise = rng.normal(scale=0.01, size=EXAMPLES_PER_PARTITION)
    return x, x @ TRUE_WEIGHTS + noise


def loss(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x @ weights - y) ** 2))


def gradient_steps(
    weights: np.ndarray, x: np.ndarray, y: np.ndarray, steps: int, learning_rate: float
) -> np.ndarray:
    for _ in range(steps):
        gradient = 2.0 * x.T @ (x @ weights - y) / len(y)
        weights = weights - learning_rate * gradient
    return weights


def median_abs_residual(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The median absolute residual, kept in order by sortedcontainers (not in Flower's
    images: the app image must bring it)."""
    from sortedcontainers import SortedList

    residuals = SortedList(float(r) for r in np.abs(x @ weights - y))
    return median(residuals)


def median(ordered) -> float:
    """Median of an already sorted sequence (a SortedList)."""
    n = len(ordered)
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0

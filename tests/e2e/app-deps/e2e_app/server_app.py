"""ServerApp: FedAvg over every connected node; fails the run unless it learnt, and reports
the median over rounds of the clients' median residuals with sortedcontainers."""

import numpy as np
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from sortedcontainers import SortedList

from e2e_app import task

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    num_rounds = int(context.run_config["num-server-rounds"])
    strategy = FedAvg(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=2)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([task.initial_weights()]),
        num_rounds=num_rounds,
    )
    # Raising here marks the run as failed, which the harness reads back with `flwr ls`.
    rounds_done = sorted(result.train_metrics_clientapp)
    if rounds_done != list(range(1, num_rounds + 1)):
        raise RuntimeError(f"expected rounds 1..{num_rounds}, got {rounds_done}")
    learnt = result.arrays.to_numpy_ndarrays()[0]
    error = float(np.max(np.abs(learnt - task.TRUE_WEIGHTS)))
    if error > 0.5:
        raise RuntimeError(f"the federated model did not learn: max error {error:.3f}")
    residuals = SortedList(
        float(result.train_metrics_clientapp[r]["median-abs-residual"]) for r in rounds_done
    )
    print(
        f"flowerbed-e2e: completed {num_rounds} rounds, max weight error {error:.4f}, "
        f"sortedcontainers median residual {task.median(residuals):.4f} over {len(residuals)} rounds"
    )

"""ServerApp (1.13 API): FedAvg; fails the run unless every round ran and the model learnt;
reports the median of the clients' median residuals with sortedcontainers."""

import numpy as np
from flwr.common import Context, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from sortedcontainers import SortedList

from e2e_app import task


class CheckedFedAvg(FedAvg):
    """FedAvg whose server-side evaluation after the last round checks the outcome."""

    def __init__(self, num_rounds: int) -> None:
        super().__init__(
            min_fit_clients=2,
            min_evaluate_clients=2,
            min_available_clients=2,
            initial_parameters=ndarrays_to_parameters([task.initial_weights()]),
        )
        self.num_rounds = num_rounds
        self.rounds_aggregated = []
        self.residuals = SortedList()

    def aggregate_fit(self, server_round, results, failures):
        aggregated = super().aggregate_fit(server_round, results, failures)
        if aggregated[0] is not None and not failures:
            self.rounds_aggregated.append(server_round)
            self.residuals.update(float(fit.metrics["median-abs-residual"]) for _, fit in results)
        return aggregated

    def evaluate(self, server_round, parameters):
        if server_round != self.num_rounds:
            return None
        # Raising here fails the run, which the harness reads back with `flwr ls`.
        expected = list(range(1, self.num_rounds + 1))
        if self.rounds_aggregated != expected:
            raise RuntimeError(f"expected rounds {expected}, got {self.rounds_aggregated}")
        learnt = parameters_to_ndarrays(parameters)[0]
        error = float(np.max(np.abs(learnt - task.TRUE_WEIGHTS)))
        if error > 0.5:
            raise RuntimeError(f"the federated model did not learn: max error {error:.3f}")
        print(
            f"flowerbed-e2e: completed {self.num_rounds} rounds, max weight error {error:.4f}, "
            f"sortedcontainers median residual {task.median(self.residuals):.4f} "
            f"over {len(self.residuals)} client results"
        )
        return None


def server_fn(context: Context) -> ServerAppComponents:
    num_rounds = int(context.run_config["num-server-rounds"])
    return ServerAppComponents(
        strategy=CheckedFedAvg(num_rounds), config=ServerConfig(num_rounds=num_rounds)
    )


app = ServerApp(server_fn=server_fn)

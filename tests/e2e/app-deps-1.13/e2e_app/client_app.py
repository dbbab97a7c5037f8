"""ClientApp (1.13 API): a few gradient steps on this node's partition; reports its median
absolute residual, computed with sortedcontainers (a dependency the images lack)."""

from flwr.client import ClientApp, NumPyClient
from flwr.common import Context
from sortedcontainers import SortedList  # noqa: F401  (fails the import without the app image)

from e2e_app import task


class LeastSquaresClient(NumPyClient):
    def __init__(self, partition_id: int, local_steps: int, learning_rate: float) -> None:
        self.x, self.y = task.load_partition(partition_id)
        self.local_steps = local_steps
        self.learning_rate = learning_rate

    def fit(self, parameters, config):
        weights = task.gradient_steps(
            parameters[0], self.x, self.y, self.local_steps, self.learning_rate
        )
        metrics = {
            "train-loss": task.loss(weights, self.x, self.y),
            "median-abs-residual": task.median_abs_residual(weights, self.x, self.y),
        }
        return [weights], len(self.y), metrics

    def evaluate(self, parameters, config):
        return task.loss(parameters[0], self.x, self.y), len(self.y), {}


def client_fn(context: Context):
    # Each supernode is started with --node-config "partition-id=N num-partitions=M".
    return LeastSquaresClient(
        partition_id=int(context.node_config.get("partition-id", 0)),
        local_steps=int(context.run_config["local-steps"]),
        learning_rate=float(context.run_config["learning-rate"]),
    ).to_client()


app = ClientApp(client_fn=client_fn)

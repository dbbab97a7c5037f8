"""ClientApp: a few gradient steps on this node's partition; reports its loss and its median
absolute residual, computed with sortedcontainers (a dependency the images lack)."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from sortedcontainers import SortedList  # noqa: F401  (fails the import without the app image)

from e2e_app import task

app = ClientApp()


def _partition(context: Context):
    # Each supernode is started with --node-config "partition-id=N num-partitions=M".
    return task.load_partition(int(context.node_config.get("partition-id", 0)))


@app.train()
def train(msg: Message, context: Context) -> Message:
    x, y = _partition(context)
    weights = msg.content["arrays"].to_numpy_ndarrays()[0]
    weights = task.gradient_steps(
        weights,
        x,
        y,
        steps=int(context.run_config["local-steps"]),
        learning_rate=float(context.run_config["learning-rate"]),
    )
    metrics = MetricRecord(
        {
            "train-loss": task.loss(weights, x, y),
            "median-abs-residual": task.median_abs_residual(weights, x, y),
            "num-examples": len(y),
        }
    )
    content = RecordDict({"arrays": ArrayRecord([weights]), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    x, y = _partition(context)
    weights = msg.content["arrays"].to_numpy_ndarrays()[0]
    metrics = MetricRecord({"eval-loss": task.loss(weights, x, y), "num-examples": len(y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

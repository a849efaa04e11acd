"""Stage functions; importing this package registers them with the runner."""
from eccflow.pipelines.stages import evaluate, nwd, prune, qat, recover, sap, train  # noqa: F401

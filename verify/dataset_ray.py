"""The dataset's batches on Ray: an actor pool of Ray Data, one model per worker.

Each item of the Ray dataset is a :class:`verify.shards.Unit`, pickled (whole
batches of one shard, or small shards joined into one batch); each worker
loads the bundle and the Keras model once, reads its units itself and
compares them batch by batch, exactly as this process would (same batches,
same numbers), and sends back each batch's
:class:`verify.row_errors.BatchResult`. Bad data found in a worker comes back
as its one-line message and is raised here.

Ray is imported only here: the ``ray`` extra is needed for ``engine="ray"`` alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from parity.runtime.errors import ParityError, quoted
from parity.verify.options import VerifyOptions
from parity.verify.row_errors import BatchResult
from parity.verify.shards import Unit

Progress = Any  # Callable[[str], None]


@contextlib.contextmanager
def ray_results(
    units: Sequence[Unit],
    names: Sequence[str],
    batch_size: int,
    bundle: str,
    model: str,
    options: VerifyOptions,
    workers: int | None,
    address: str | None,
    say: Progress,
) -> Iterator[tuple[Iterator[BatchResult], int]]:
    """Yield the batch results of every unit, computed on Ray, and the number
    of workers; Ray is stopped (or left) when the block ends.

    Args:
        units: the dataset's units, from :func:`verify.shards.plan_units`.
        names: the inputs to read.
        batch_size: rows per batch.
        bundle: the bundle's folder, as the workers see it.
        model: the ``.keras`` file, as the workers see it.
        options: the verification's options, sent whole to every worker.
        workers: the actor pool's size; the CPUs of Ray when None.
        address: a running cluster to join; None starts a local Ray.
        say: called with a line as Ray starts.
    """
    try:
        import ray
    except ImportError:
        raise ParityError(
            "the Ray engine needs Ray: pip install 'parity[ray]' (ray[data])"
        ) from None
    started = not ray.is_initialized()
    if started:
        say("starting Ray" + (f" at {address}" if address else ""))
        settings: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR)
        if address:
            settings["address"] = address
        else:
            settings.update(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False)
        try:
            ray.init(**settings)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ParityError(f"Ray: cannot start or join ({quoted(exc)})") from None
    try:
        pool = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        say(f"comparing on Ray with {pool} worker(s)")
        _quiet_ray_data()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        items = [{"unit": pickle.dumps(unit)} for unit in units]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        compared = dataset.map_batches(
            _Worker,
            fn_constructor_kwargs=dict(
                names=list(names),
                batch_size=batch_size,
                bundle=bundle,
                model=model,
                options=options,
            ),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=1,
            batch_format="numpy",
        )
        with warnings.catch_warnings():
            # Ray warns when there are fewer units than workers: a small dataset.
            warnings.simplefilter("ignore", UserWarning)
            yield _unpacked(compared.iter_rows()), pool
    finally:
        if started:
            ray.shutdown()


def _quiet_ray_data() -> None:
    """Ray Data logs each execution to the console; its log file keeps that."""
    import ray.data  # noqa: F401  (configures the "ray.data" logger)

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def _unpacked(rows: Iterator[dict[str, Any]]) -> Iterator[BatchResult]:
    for row in rows:
        kind, value = pickle.loads(row["payload"])
        if kind == "error":
            raise ParityError(value)
        yield from value


class _Worker:
    """One Ray actor: the bundle and the model loaded once, then unit after unit."""

    def __init__(
        self,
        names: list[str],
        batch_size: int,
        bundle: str,
        model: str,
        options: VerifyOptions,
    ) -> None:
        import tensorflow as tf

        # One CPU per actor: TensorFlow's pools would take every core of the machine.
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from parity.verify.row_errors import RowComparer

        self.names = names
        self.batch_size = batch_size
        self.error: str | None = None
        try:
            self.comparer = RowComparer(bundle, model, options)
        except ParityError as exc:
            self.error = str(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from parity.verify.shards import read_batches

        payloads = []
        for item in batch["unit"]:
            unit = pickle.loads(item)
            if self.error is not None:
                payloads.append(("error", self.error))
                continue
            try:
                results = [
                    self.comparer.compare(rows)
                    for rows in read_batches(unit, self.names, self.batch_size)
                ]
                payloads.append(("results", results))
            except ParityError as exc:
                payloads.append(("error", str(exc)))
        column = np.empty(len(payloads), dtype=object)
        column[:] = [pickle.dumps(payload) for payload in payloads]
        return {"payload": column}

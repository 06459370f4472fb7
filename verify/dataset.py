"""``check_dataset``: TensorFlow against ONNX Runtime on every row of a dataset.

``verify`` draws inputs; a user about to ship wants their own validation set:
"on all 50,000 rows, ONNX Runtime's class equals Keras' class, and the
largest error is 3e-7". The dataset streams through both runtimes in batches
(:mod:`verify.shards` reads it; :mod:`verify.row_errors` compares a batch row
by row), in this process or on Ray (:mod:`verify.dataset_ray`), and the
per-row results are gathered into a :class:`DatasetReport`: error percentiles
per output, the worst failing rows, the argmax agreement of classifiers,
taggers and token generations, and PASS/FAIL under ``verify``'s tolerance
rules. Both engines cut the same batches and so give the same numbers, row
for row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from parity.runtime.bundle_format.manifest import Manifest, read_manifest
from parity.runtime.errors import ParameterError, ParityError
from parity.runtime.limits import byte_limit, describe_bytes
from parity.runtime.npy import MAX_ARRAY_BYTES, MAX_ARRAY_BYTES_VARIABLE
from parity.runtime.paths import as_path
from parity.runtime.progress import duration
from parity.runtime.versions import tool_versions
from parity.verify.check import DATASET_ROW
from parity.verify.dataset_report import (
    Agreement,
    DatasetReport,
    OutputSummary,
)
from parity.verify.options import VerifyOptions
from parity.verify.row_errors import MAX_FAILED_ROWS, BatchResult, FailedRow, RowComparer
from parity.verify.shards import Shard, list_shards, plan_units, read_batches, row_shapes
from parity.verify.tolerance import TolerancePolicy

ENGINES = ("local", "ray")
# The default batch: inputs and outputs of one batch within this many bytes,
# and no more rows than this, so that progress and workers get many batches.
BATCH_BYTES = 64 * 2**20
MAX_DEFAULT_BATCH = 1024
# At most one progress line per this many seconds.
PROGRESS_INTERVAL = 1.0
Progress = Callable[[str], None]


def check_dataset(
    bundle: str | Path,
    model: str | Path | Any,
    data: str | Path,
    options: VerifyOptions | None = None,
    *,
    batch_size: int | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DatasetReport:
    """Run every row of ``data`` through TensorFlow and ONNX Runtime and compare them.

    Args:
        bundle: the bundle's folder.
        model: the Keras model file the bundle was exported from (or, in this
            process only, a loaded Keras model).
        data: an ``.npz`` file or a folder of ``.npz`` shards (one array per
            input name, rows on axis 0), or a Parquet file or folder (one
            column per input); see :mod:`verify.shards`. Masked inputs are fed
            as they are, padding and all. A seq2seq bundle reads its encoder's
            inputs and generates from each row.
        options: where both runtimes run, the tolerances and a seq2seq
            horizon (:class:`VerifyOptions`; its draws are not used here).
        batch_size: rows per batch; by default as many as keep one batch's
            inputs and outputs within :data:`BATCH_BYTES`, at most
            :data:`MAX_DEFAULT_BATCH`; a batch whose inputs take more than
            the array limit is refused (:func:`check_batch_size`).
        engine: "local" (this process) or "ray" (an actor pool of Ray Data;
            needs the ``ray`` extra): a local Ray started and stopped here,
            or the cluster at ``ray_address``. Its workers read the data, the
            bundle and the model from the same paths, so on a cluster they
            must be on a file system every node sees.
        ray_address: the address of a running Ray cluster to join.
        workers: Ray workers, each with one CPU: by default the local Ray gets
            this machine's CPUs, a cluster all of its CPUs.
        progress: called with a line now and then: rows done, rows per second, time left.

    Returns:
        The report; a row out of tolerance is a failure in it, never an exception.

    Raises:
        ParityError: a bundle, model or dataset that cannot be read, or a row
            that does not fit the graph (NaN, a wrong shape, a token id out of
            the vocabulary), named by its shard and row; a bad parameter
            (:class:`ParameterError`).
    """
    options = options or VerifyOptions()
    policy, steps, device = options.policy, options.steps, options.device
    _check_parameters(engine, ray_address, batch_size, workers, model)
    say = progress or (lambda message: None)
    manifest = read_manifest(as_path(bundle, "bundle"))
    names = [spec.name for spec in _data_graph(manifest).inputs]
    shards = list_shards(data, names)
    total = sum(shard.rows for shard in shards)
    if total == 0:
        raise ParityError(f"{data}: the dataset holds no rows")
    if batch_size is None:
        batch_size = default_batch_size(manifest, shards[0], names, steps)
    else:
        check_batch_size(batch_size, shards[0], names)
    units = plan_units(shards, batch_size)
    if engine == "local":
        say("loading the bundle and the model")
        comparer = RowComparer(bundle, model, options)
        label, path, workers = comparer.model_label, comparer.generation_path, 1
        batches = (batch for unit in units for batch in read_batches(unit, names, batch_size))
        results: Iterable[BatchResult] = (comparer.compare(batch) for batch in batches)
        providers = sorted({p for ps in comparer.bundle.providers.values() for p in ps})
        tensorflow = comparer.tf_device.label
        tally = _run(results, manifest, total, policy, say)
    else:
        from parity.verify.dataset_ray import ray_results

        label, path = str(model), _generation_path(manifest)
        with ray_results(
            units, names, batch_size, str(bundle), str(model), options, workers, ray_address, say
        ) as (results, workers):
            tally = _run(results, manifest, total, policy, say)
        providers, tensorflow = ["(in the workers)"], "(in the workers)"
    return tally.report(
        bundle=str(bundle),
        model=label,
        data=str(data),
        engine=engine,
        workers=workers,
        batch_size=batch_size,
        shards=len(shards),
        device={"requested": device, "onnxruntime": providers, "tensorflow": tensorflow},
        generation=None if path is None else {"steps": _horizon(manifest, steps), "path": path},
    )


def _check_parameters(
    engine: str, ray_address: str | None, batch_size: int | None, workers: int | None, model: Any
) -> None:
    if engine not in ENGINES:
        raise ParameterError("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if ray_address is not None and engine != "ray":
        raise ParameterError("ray_address", "joins a Ray cluster: only with the Ray engine")
    for name, value in (("batch_size", batch_size), ("workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ParameterError(name, f"must be an integer, got {value!r}")
        if value is not None and value < 1:
            raise ParameterError(name, f"must be at least 1, got {value}")
    if engine == "ray" and not isinstance(model, str | Path):
        raise ParameterError("model", "Ray workers load the model themselves: give its path")


def _data_graph(manifest: Manifest) -> Any:
    """The graph whose inputs a dataset row holds: the model's, or a seq2seq
    bundle's encoder's."""
    if manifest.seq2seq is not None:
        return manifest.graph(manifest.seq2seq.encoder_graph)
    if manifest.streaming is not None:
        raise ParameterError("data", "a stream bundle is verified on sequences fed in chunks")
    return manifest.graph("model")


def _horizon(manifest: Manifest, steps: int | None) -> int:
    return manifest.seq2seq.steps if steps is None else steps


def _generation_path(manifest: Manifest) -> str | None:
    if manifest.seq2seq is None:
        return None
    return "step loop" if manifest.seq2seq.loop_graph is None else "loop graph"


def check_batch_size(batch_size: int, shard: Shard, names: Sequence[str]) -> None:
    """Refuse a batch whose inputs alone would take more than the array
    limit (:mod:`parity.runtime.npy`, ``PARITY_MAX_ARRAY_BYTES``).

    Args:
        batch_size: rows per batch, as asked.
        shard: the first shard: the rows' shapes.
        names: the inputs.

    Raises:
        ParameterError: for ``batch_size``.
    """
    row = sum(prod(shape) * itemsize for shape, itemsize in row_shapes(shard, names).values())
    limit = byte_limit(MAX_ARRAY_BYTES_VARIABLE, MAX_ARRAY_BYTES)
    if batch_size * row > limit:
        raise ParameterError(
            "batch_size",
            f"{batch_size:,} rows of this data take {describe_bytes(batch_size * row)}, beyond the "
            f"limit of {describe_bytes(limit)} (set {MAX_ARRAY_BYTES_VARIABLE} to raise it)",
        )


def default_batch_size(
    manifest: Manifest, shard: Shard, names: Sequence[str], steps: int | None = None
) -> int:
    """Rows per batch such that one batch's inputs and outputs (both
    runtimes') take at most :data:`BATCH_BYTES`, at most :data:`MAX_DEFAULT_BATCH`.

    Args:
        manifest: the bundle's manifest: the outputs' shapes.
        shard: the first shard: the inputs' shapes (and time lengths).
        names: the inputs.
        steps: a seq2seq bundle's horizon; the manifest's when None.
    """
    shapes = row_shapes(shard, names)
    graph = _data_graph(manifest)
    sizes: dict[str, int] = {}
    for spec in graph.inputs:
        shape = shapes.get(spec.name, ((), 0))[0]
        for dim, size in zip(spec.shape[1:], shape, strict=False):
            if isinstance(dim, str):
                sizes.setdefault(dim, size)
    row = sum(prod(shape) * itemsize for shape, itemsize in shapes.values())
    if manifest.seq2seq is not None:
        spec = manifest.seq2seq
        output = manifest.graph(spec.step_graph).output(spec.step_output)
        features = prod(d if isinstance(d, int) else 1 for d in output.shape[2:])
        row += 2 * 4 * _horizon(manifest, steps) * features
    else:
        for output in graph.outputs:
            dims = [d if isinstance(d, int) else sizes.get(d, 1) for d in output.shape[1:]]
            row += 2 * np.dtype(output.dtype).itemsize * prod(dims)
    return max(1, min(MAX_DEFAULT_BATCH, BATCH_BYTES // max(row, 1)))


def _run(
    results: Iterable[BatchResult],
    manifest: Manifest,
    total: int,
    policy: TolerancePolicy,
    say: Progress,
) -> _Tally:
    tally = _Tally(manifest, total, policy)
    meter = _Meter(total, say)
    for result in results:
        tally.add(result)
        meter.advance(result.rows)
    meter.finish()
    return tally


class _Meter:
    """Progress lines: rows done, rows per second since the first batch, time left."""

    def __init__(self, total: int, say: Progress) -> None:
        self.total = total
        self.say = say
        self.done = 0
        self.first: float | None = None
        self.last_line = 0.0
        self.said = -1

    def advance(self, rows: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
            self.first_rows = rows
        self.done += rows
        if now - self.last_line >= PROGRESS_INTERVAL:
            self.last_line = now
            self.said = self.done
            self.say(self.line(now))

    def finish(self) -> None:
        if self.said != self.done:
            self.say(self.line(time.monotonic()))

    def line(self, now: float) -> str:
        elapsed = now - (self.first or now)
        counted = self.done - getattr(self, "first_rows", 0)
        rate = counted / elapsed if elapsed > 0 and counted > 0 else None
        text = f"rows {self.done:,}/{self.total:,} ({self.done / self.total:.0%})"
        if rate is None:
            return text
        left = (self.total - self.done) / rate
        return f"{text}, {rate:,.0f} rows/s, {duration(left)} left"


class _Tally:
    """The per-row results of every batch, by dataset row, whatever order
    batches come back in; and the worst failing rows with their inputs."""

    def __init__(self, manifest: Manifest, total: int, policy: TolerancePolicy) -> None:
        seq2seq = manifest.seq2seq
        if seq2seq is not None:
            self.names = [seq2seq.step_output]
            self.tokens = seq2seq.feedback != "identity"
        else:
            self.names = [spec.name for spec in manifest.graph("model").outputs]
            self.tokens = False
        self.kind = "generation" if seq2seq is not None else "output"
        self.policy = policy
        self.total = total
        self.max_abs = {name: np.full(total, np.nan) for name in self.names}
        self.ratio = {name: np.full(total, np.nan) for name in self.names}
        self.first_failing = {name: np.full(total, -1, np.int64) for name in self.names}
        self.agree = {name: np.zeros(total, np.int64) for name in self.names}
        self.positions = {name: np.zeros(total, np.int64) for name in self.names}
        self.first_divergent = {name: np.full(total, -1, np.int64) for name in self.names}
        self.probabilities = dict.fromkeys(self.names, True)
        self.comparable = dict.fromkeys(self.names, True)
        self.has_steps = dict.fromkeys(self.names, False)
        self.worst: list[tuple[FailedRow, dict[str, np.ndarray]]] = []
        self.details: list[str] = []
        self.began = np.inf
        self.ended = -np.inf

    def add(self, result: BatchResult) -> None:
        rows = slice(result.start, result.start + result.rows)
        for output in result.outputs:
            name = output.name
            self.max_abs[name][rows] = output.max_abs
            self.ratio[name][rows] = output.ratio
            if output.first_failing_step is not None:
                self.first_failing[name][rows] = output.first_failing_step
                self.has_steps[name] = True
            self.probabilities[name] &= output.probabilities
            if output.agree is None:
                self.comparable[name] = False
            else:
                self.agree[name][rows] = output.agree
                self.positions[name][rows] = output.positions
            if output.first_divergent_step is not None:
                self.first_divergent[name][rows] = output.first_divergent_step
        if result.detail and len(self.details) < MAX_FAILED_ROWS:
            self.details.append(
                f"dataset rows {result.start} to {result.start + result.rows - 1}: {result.detail}"
            )
        self.worst = sorted(
            [*self.worst, *zip(result.failed, result.failed_inputs, strict=True)],
            key=lambda pair: (-pair[0].ratio, pair[0].row),
        )[:MAX_FAILED_ROWS]
        self.began = min(self.began, result.began)
        self.ended = max(self.ended, result.ended)

    def report(self, **fields: Any) -> DatasetReport:
        failing = np.zeros(self.total, bool)
        for name in self.names:
            failing |= ~(self.ratio[name] <= 1)  # NaN: a row never compared fails
        failed_inputs, notes = self._failed_inputs()
        return DatasetReport(
            rows=self.total,
            rows_failed=int(failing.sum()),
            outputs=tuple(self._summary(name) for name in self.names),
            worst=tuple(row for row, _ in self.worst),
            seconds=max(self.ended - self.began, 0.0),
            versions=tool_versions(tensorflow=True),
            notes=tuple(self.details + notes),
            failed_inputs=failed_inputs,
            row_max_abs=dict(self.max_abs),
            **fields,
        )

    def _summary(self, name: str) -> OutputSummary:
        errors = self.max_abs[name]
        errors = np.where(np.isnan(errors), np.inf, errors)
        p50, p99 = (float(v) for v in np.percentile(errors, [50, 99], method="higher"))
        first = self.first_failing[name]
        tolerance = self.policy.for_output(name)
        return OutputSummary(
            name=name,
            kind=self.kind,
            atol=tolerance.atol,
            rtol=tolerance.rtol,
            growth=self.policy.growth if self.kind == "generation" else 0.0,
            rows_failed=int((~(self.ratio[name] <= 1)).sum()),
            p50=p50,
            p99=p99,
            max_abs=float(errors.max()),
            first_failing_step=int(first[first >= 0].min()) if (first >= 0).any() else None,
            agreement=self._agreement(name),
        )

    def _agreement(self, name: str) -> Agreement | None:
        if not self.comparable[name] or not (self.tokens or self.probabilities[name]):
            return None
        agree, positions = self.agree[name], self.positions[name]
        differing = np.flatnonzero(agree < positions)
        divergent = self.first_divergent[name]
        return Agreement(
            per="step" if self.has_steps[name] else "row",
            agree=int(agree.sum()),
            total=int(positions.sum()),
            rows_differing=len(differing),
            first_divergent_step=(
                int(divergent[divergent >= 0].min()) if (divergent >= 0).any() else None
            ),
            rows=tuple(int(row) for row in differing[:MAX_FAILED_ROWS]),
        )

    def _failed_inputs(self) -> tuple[dict[str, np.ndarray], list[str]]:
        """The worst rows' inputs as one array per input: those whose shapes
        are the worst row's (an array holds one time length)."""
        if not self.worst:
            return {}, []
        shapes = {name: array.shape for name, array in self.worst[0][1].items()}
        kept = [
            (row, inputs)
            for row, inputs in self.worst
            if {name: array.shape for name, array in inputs.items()} == shapes
        ]
        arrays = {name: np.concatenate([inputs[name] for _, inputs in kept]) for name in shapes}
        arrays[DATASET_ROW] = np.array([row.row for row, _ in kept], np.int64)
        notes = []
        if len(kept) < len(self.worst):
            notes.append(
                f"{len(self.worst) - len(kept)} of the worst rows have other time lengths than "
                "the worst one: their inputs are not in the failures file"
            )
        return arrays, notes


@dataclass(frozen=True)
class Throughput:
    """Rows per second of :func:`check_dataset` on one dataset."""

    engine: str
    workers: int
    rows: int
    seconds: float  # from the first batch's start to the last's end: without loading
    setup_seconds: float  # everything else: loading, starting Ray and its workers

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def throughput(
    bundle: str | Path,
    model: str | Path,
    data: str | Path,
    *,
    engine: str = "local",
    workers: int | None = None,
    batch_size: int | None = None,
) -> Throughput:
    """Time :func:`check_dataset` on ``data``: the rows per second of its
    batches (their first start to their last end), apart from the time it
    takes to load the models and start Ray.

    Args:
        bundle: the bundle's folder.
        model: its ``.keras`` file.
        data: the dataset.
        engine: "local" or "ray" (a local Ray).
        workers: Ray workers.
        batch_size: rows per batch; the default's when None.
    """
    began = time.perf_counter()
    report = check_dataset(
        bundle,
        model,
        data,
        VerifyOptions(device="cpu"),
        engine=engine,
        workers=workers,
        batch_size=batch_size,
    )
    total = time.perf_counter() - began
    return Throughput(engine, report.workers, report.rows, report.seconds, total - report.seconds)

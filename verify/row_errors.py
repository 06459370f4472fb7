"""TensorFlow against ONNX Runtime row by row, one batch of a dataset at a time.

A :class:`RowComparer` loads the bundle and the Keras model once (in each
worker, when the dataset is spread over several) and compares batches: the
same element-wise comparison as every check
(:func:`parity.runtime.comparison.compare_elements`), reported per row. A
batch's :class:`BatchResult` keeps, per row and output, the largest absolute
error and the largest *tolerance ratio* ``|onnx - tf| / (atol + rtol * |tf|)``
over the row, so that a row passes numpy's allclose rule exactly when the
ratio is at most 1 (a NaN or Inf on one side only makes it infinite). It
also keeps the argmax agreement of outputs over classes or tokens, and the
batch's worst failing rows with their inputs. It holds no whole outputs: a
worker sends it back whole.

Single bundles run the whole model; seq2seq bundles generate from each row's
encoder input over the horizon, ONNX Runtime's generation
(:func:`parity.runtime.generate`, the path it takes by default) against
TensorFlow's reference (:func:`parity.exporter.keras_generation.reference_generate`),
the tolerance growing with the step as in ``verify``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parity.runtime import load_bundle
from parity.runtime.bundle_format.manifest import GraphSpec, MaskSpec
from parity.runtime.comparison import compare_elements, is_probability
from parity.runtime.errors import InputError, RunError
from parity.runtime.generate import check_steps
from parity.runtime.inputs import check_feeds, check_prefix_mask
from parity.verify.options import VerifyOptions
from parity.verify.runners import KerasRunner, OnnxRuntimeRunner, on_device, select_device
from parity.verify.shards import Batch
from parity.verify.tolerance import Tolerance, for_precision

# The failing rows a batch keeps (with their inputs), and a report lists.
MAX_FAILED_ROWS = 20


@dataclass(frozen=True)
class OutputRows:
    """One output's errors, row by row, over one batch."""

    name: str
    max_abs: np.ndarray  # (rows,) the largest absolute error of each row
    ratio: np.ndarray  # (rows,) the tolerance ratio of each row; above 1 fails
    first_failing_step: np.ndarray | None  # (rows,) -1 where none; outputs with steps
    probabilities: bool  # TensorFlow's values are probabilities over the last axis
    agree: np.ndarray | None  # (rows,) argmax positions where both sides agree
    positions: int  # argmax positions per row: its steps, or 1
    first_divergent_step: np.ndarray | None  # (rows,) -1 where none; outputs with steps


@dataclass(frozen=True)
class FailedRow:
    """A row that fails, at its worst output."""

    row: int  # in the dataset
    shard: str
    shard_row: int
    output: str
    step: int | None  # the first step of the output that fails, where it has steps
    max_abs: float
    ratio: float
    index: tuple[int, ...]  # the worst element, within the row
    expected: float
    actual: float


@dataclass(frozen=True)
class BatchResult:
    """What one batch gives: per-row errors, its worst failing rows and their inputs."""

    start: int  # the dataset index of the first row
    rows: int
    outputs: tuple[OutputRows, ...]
    failed: tuple[FailedRow, ...]
    failed_inputs: tuple[dict[str, np.ndarray], ...]  # one row's inputs (1, ...) each
    detail: str  # why nothing could be compared, where nothing could
    began: float  # time.time() when the batch started and ended
    ended: float


class RowComparer:
    """A bundle and its Keras model, loaded once, compared batch by batch.

    Args:
        bundle: the bundle's folder.
        model: the Keras model file the bundle was exported from, or a loaded Keras model.
        options: where both runtimes run, the tolerances and a seq2seq
            horizon (:class:`parity.verify.options.VerifyOptions`).

    Raises:
        ParityError: a bundle or model that cannot be loaded, or a model that
            is not the bundle's.
    """

    def __init__(
        self, bundle: str | Path, model: str | Path | Any, options: VerifyOptions | None = None
    ) -> None:
        from parity.verify.check import load_source_model

        options = options or VerifyOptions()
        device, tf32, steps = options.device, options.tf32, options.steps
        self.bundle = load_bundle(bundle, device=device, tf32=tf32)
        manifest = self.bundle.manifest
        keras_model, self.model_label = load_source_model(model, manifest, options)
        self.tf_device = select_device(device, tf32)
        self.policy = for_precision(options.policy, tf32 and self.bundle.device == "gpu")
        self.mask = manifest.mask
        self.seq2seq = manifest.seq2seq
        if self.seq2seq is not None:
            from parity.exporter.split import split_seq2seq

            self.split = split_seq2seq(keras_model)
            self.graph = manifest.graph(self.seq2seq.encoder_graph)
            self.steps = check_steps(self.seq2seq.steps if steps is None else steps)
        else:
            self.graph = manifest.graph("model")
            self.tensorflow = KerasRunner(keras_model, self.tf_device)
            self.onnxruntime = OnnxRuntimeRunner(self.bundle, "model")

    @property
    def generation_path(self) -> str | None:
        """The path ONNX Runtime generates along ("loop graph" or "step loop"),
        for seq2seq bundles."""
        if self.seq2seq is None:
            return None
        return "step loop" if self.seq2seq.loop_graph is None else "loop graph"

    def compare(self, batch: Batch) -> BatchResult:
        """Run both runtimes on ``batch`` and compare them row by row.

        Args:
            batch: rows of the dataset.

        Raises:
            InputError: a row that does not fit the graph's inputs, named by
                its shard and row.
        """
        began = time.time()
        feeds = checked_rows(self.graph, self.mask, batch)
        try:
            compared = self._compare(feeds)
        except RunError as exc:
            detail = f"onnxruntime failed: {exc}"
            compared = [_not_compared(name, batch.rows, detail) for name in self._output_names()]
            return _result(batch, feeds, compared, detail, began)
        detail = "; ".join(f"{c.rows.name}: {c.detail}" for c in compared if c.detail)
        return _result(batch, feeds, compared, detail, began)

    def _output_names(self) -> list[str]:
        if self.seq2seq is not None:
            return [self.seq2seq.step_output]
        return [spec.name for spec in self.graph.outputs]

    def _compare(self, feeds: dict[str, np.ndarray]) -> list[Compared]:
        if self.seq2seq is None:
            expected = self.tensorflow.run(feeds)
            actual = self.onnxruntime.run(feeds)
            return [
                compare_output(
                    name,
                    expected[name],
                    actual[name],
                    self.policy.for_output(name),
                    steps=expected[name].ndim >= 3,
                )
                for name in self._output_names()
            ]
        from parity.exporter.keras_generation import reference_generate
        from parity.runtime import generate
        from parity.runtime.generate import start_input

        start = start_input(self.bundle.manifest, feeds)
        with on_device(self.tf_device):
            expected = reference_generate(self.split, feeds, start, self.steps)
        actual = generate(self.bundle, feeds, start=start, steps=self.steps)
        name = self.seq2seq.step_output
        return [
            compare_output(
                name,
                expected,
                actual,
                self.policy.for_output(name),
                steps=True,
                growth=self.policy.growth,
            )
        ]


def checked_rows(graph: GraphSpec, mask: MaskSpec | None, batch: Batch) -> dict[str, np.ndarray]:
    """The batch's inputs, checked as the runtime checks them and cast to the
    graph's dtypes; a row that does not fit is named by its shard and row.

    Args:
        graph: the graph the rows feed.
        mask: the bundle's mask, whose fused graph needs post-padded rows.
        batch: the rows.

    Raises:
        InputError: the first row that does not fit, or the batch where no row
            alone is wrong (inputs of different time lengths).
    """
    arrays = {spec.name: batch.arrays[spec.name] for spec in graph.inputs}
    try:
        return _checked(graph, mask, arrays)
    except InputError as exc:
        for row in range(batch.rows):
            try:
                _checked(
                    graph, mask, {name: array[row : row + 1] for name, array in arrays.items()}
                )
            except InputError as row_error:
                raise InputError(f"{batch.where(row)}: {row_error}") from None
        raise InputError(f"{batch.span()}: {exc}") from None


def _checked(
    graph: GraphSpec, mask: MaskSpec | None, arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    checked = check_feeds(graph, arrays)
    if mask is not None and mask.fused and mask.input in checked:
        check_prefix_mask(checked[mask.input], mask)
    return checked


@dataclass(frozen=True)
class Compared:
    """One output of one batch compared: its per-row errors, and the
    elementwise values that the worst rows' details are read from."""

    rows: OutputRows
    ratio: np.ndarray  # elementwise tolerance ratios
    expected: np.ndarray  # TensorFlow's values, as float64
    actual: np.ndarray  # ONNX Runtime's values, as float64
    detail: str = ""  # why nothing could be compared, where nothing could


def compare_output(
    name: str,
    expected: np.ndarray,
    actual: np.ndarray,
    tolerance: Tolerance,
    *,
    steps: bool = False,
    growth: float | None = None,
) -> Compared:
    """One output's per-row errors, under the allclose rule of ``verify``.

    Args:
        name: the output's name.
        expected: TensorFlow's values, rows on axis 0.
        actual: ONNX Runtime's values.
        tolerance: the output's atol and rtol.
        steps: axis 1 is a time axis (a tagger's, a generation's).
        growth: the tolerance at step ``t`` is ``tolerance * (1 + growth * t)``
            (a generation); None keeps it flat.
    """
    expected, actual = np.asarray(expected), np.asarray(actual)
    rows = len(expected)
    if expected.shape != actual.shape or expected.dtype != actual.dtype:
        found = f"shape {actual.shape} dtype {actual.dtype}"
        wanted = f"shape {expected.shape} dtype {expected.dtype}"
        return _not_compared(name, rows, f"{found} where {wanted} was expected")
    atol = np.float64(tolerance.atol)
    rtol = np.float64(tolerance.rtol)
    if growth is not None and steps and expected.ndim >= 2:
        factor = 1.0 + growth * np.arange(expected.shape[1], dtype=np.float64)
        factor = factor.reshape(1, -1, *([1] * (expected.ndim - 2)))
        atol, rtol = atol * factor, rtol * factor
    elements = compare_elements(expected, actual, atol, rtol)
    a, b, error, ratio = elements.actual, elements.expected, elements.error, elements.ratio
    first_failing = None
    if steps and b.ndim >= 2:
        fails = (ratio > 1).reshape(rows, b.shape[1], -1).any(axis=2)
        first_failing = np.where(fails.any(axis=1), fails.argmax(axis=1), -1)
    agree, positions, first_divergent = _agreement(b, a, steps)
    result = OutputRows(
        name=name,
        max_abs=error.reshape(rows, -1).max(axis=1, initial=0.0),
        ratio=ratio.reshape(rows, -1).max(axis=1, initial=0.0),
        first_failing_step=first_failing,
        probabilities=is_probability(expected),
        agree=agree,
        positions=positions,
        first_divergent_step=first_divergent,
    )
    return Compared(result, ratio, b, a)


def _agreement(
    expected: np.ndarray, actual: np.ndarray, steps: bool
) -> tuple[np.ndarray | None, int, np.ndarray | None]:
    """Per row: at how many positions the argmax over the last axis agrees, and
    (with steps) the first step where it does not."""
    if expected.ndim < 2 or expected.shape[-1] < 2:
        return None, 0, None
    rows = len(expected)
    same = (expected.argmax(axis=-1) == actual.argmax(axis=-1)).reshape(rows, -1)
    first = None
    if steps and expected.ndim >= 3:
        differs = ~same
        first = np.where(differs.any(axis=1), differs.argmax(axis=1), -1)
    return same.sum(axis=1), same.shape[1], first


def _not_compared(name: str, rows: int, detail: str) -> Compared:
    inf = np.full(rows, np.inf)
    nan = np.full(rows, np.nan)
    return Compared(OutputRows(name, inf, inf, None, False, None, 0, None), inf, nan, nan, detail)


def _result(
    batch: Batch,
    feeds: Mapping[str, np.ndarray],
    compared: list[Compared],
    detail: str,
    began: float,
) -> BatchResult:
    """The batch's result, with its worst failing rows (at most
    :data:`MAX_FAILED_ROWS`, worst first) and their inputs as the dataset has them."""
    ratios = np.stack([c.rows.ratio for c in compared])  # (outputs, rows)
    worst_output = ratios.argmax(axis=0)
    worst_ratio = ratios.max(axis=0)
    failing = np.flatnonzero(worst_ratio > 1)
    order = failing[np.lexsort((failing, -worst_ratio[failing]))][:MAX_FAILED_ROWS]
    failed, inputs = [], []
    for row in (int(r) for r in order):
        failed.append(_failed_row(batch, row, compared[int(worst_output[row])]))
        inputs.append({name: np.array(batch.arrays[name][row : row + 1]) for name in feeds})
    return BatchResult(
        start=batch.start,
        rows=batch.rows,
        outputs=tuple(c.rows for c in compared),
        failed=tuple(failed),
        failed_inputs=tuple(inputs),
        detail=detail,
        began=began,
        ended=time.time(),
    )


def _failed_row(batch: Batch, row: int, compared: Compared) -> FailedRow:
    rows = compared.rows
    within = np.asarray(compared.ratio[row])
    index = tuple(int(i) for i in np.unravel_index(int(within.argmax()), within.shape))
    expected = float(np.asarray(compared.expected[row])[index])
    actual = float(np.asarray(compared.actual[row])[index])
    step = None if rows.first_failing_step is None else int(rows.first_failing_step[row])
    shard, shard_row = batch.origin(row)
    return FailedRow(
        row=batch.start + row,
        shard=shard,
        shard_row=shard_row,
        output=rows.name,
        step=step,
        max_abs=float(rows.max_abs[row]),
        ratio=float(rows.ratio[row]),
        index=index,
        expected=expected,
        actual=actual,
    )

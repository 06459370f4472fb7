"""The whole product on the zoo in one call: train, export, verify, summarise.

:func:`run_demo` trains each zoo model on a preset, exports it to a bundle and
verifies the bundle against TensorFlow; :func:`demo_table` lays the rows out
for a terminal. ``parity demo`` is these two functions and a print.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from parity.runtime.progress import Progress, prefixed, silent
from parity.verify.report import Report

HEADER = ("model", "held-out", "checks", "max abs err", "result", "time")


@dataclass(frozen=True)
class DemoRow:
    """One zoo model: its held-out score (``metric``, e.g. "accuracy 0.953"),
    the verification ``report`` of its bundle and the seconds the three steps took."""

    name: str
    metric: str
    report: Report
    seconds: float

    @property
    def passed(self) -> bool:
        return self.report.passed


@dataclass(frozen=True)
class DemoResult:
    """The rows, in zoo order, and the folder that holds each model (NAME.keras)
    and its bundle (NAME/)."""

    folder: Path
    rows: tuple[DemoRow, ...]

    @property
    def failed(self) -> tuple[DemoRow, ...]:
        return tuple(row for row in self.rows if not row.passed)


def run_demo(
    folder: Path | None = None,
    *,
    names: Sequence[str] = (),
    preset: str = "tiny",
    seed: int = 0,
    device: str = "auto",
    progress: Progress = silent,
) -> DemoResult:
    """Train, export and verify each zoo model.

    ``folder``: where the models and bundles are kept (created if missing;
    None: a new temporary folder). ``names``: the zoo models (empty: all).
    ``preset``: the zoo preset to train. ``seed``: the training, golden and
    drawn inputs' seed. ``device``: where verification runs (auto, cpu, gpu).
    ``progress`` hears one line per step, each epoch of training and each
    stage of export and verification, after the model's number and name
    ("2/5 masked_lstm: ..."). Unknown names and presets are refused before
    anything is trained or created.
    """
    from parity import models
    from parity.exporter import export_keras
    from parity.files import save_model
    from parity.runtime.providers import check_device
    from parity.verify.check import check
    from parity.verify.options import VerifyOptions

    chosen = list(names) or models.names()
    for name in chosen:
        models.get(name).preset(preset)
    check_device(device)
    folder = Path(tempfile.mkdtemp(prefix="parity-demo-")) if folder is None else Path(folder)
    _claim(folder)
    rows = []
    for number, name in enumerate(chosen, 1):
        started = time.perf_counter()
        say = prefixed(progress, f"{number}/{len(chosen)} {name}: ")
        say(f"training ({preset} preset)")
        trained = models.train(name, preset=preset, seed=seed, progress=say)
        source = save_model(trained.model, folder / f"{name}.keras")
        say("exporting")
        export_keras(source, folder / name, seed=seed, progress=say)
        say("verifying")
        options = VerifyOptions(device=device, seed=seed)
        report = check(folder / name, source, options, progress=say)
        seconds = time.perf_counter() - started
        rows.append(DemoRow(name, held_out(trained.metrics), report, seconds))
    return DemoResult(folder, tuple(rows))


# The file that marks a folder as the demo's, so that a second run may write there.
DEMO_MARKER = ".parity-demo"


def _claim(folder: Path) -> None:
    """Make ``folder`` the demo's: created where missing, taken where empty
    or the demo's already; any other folder is refused and left untouched
    (the demo replaces the models and bundles it writes there)."""
    from parity.runtime.errors import ParityError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()) and not (folder / DEMO_MARKER).is_file():
            raise ParityError(
                f"{folder}: a folder that the demo did not make; it is left untouched (name "
                "another with -o)"
            )
        (folder / DEMO_MARKER).touch()
    except OSError as exc:
        raise ParityError(f"{folder}: cannot write here ({exc.strerror or exc})") from None


def held_out(metrics: Mapping[str, float]) -> str:
    """The first of the usual scores in ``metrics``, e.g. "accuracy 0.953"."""
    for key in ("accuracy", "acc", "loss", "mse"):
        if key in metrics:
            return f"{key} {metrics[key]:.3f}"
    return ""


def demo_table(rows: Sequence[DemoRow]) -> str:
    """One line per row under a header, columns padded to their widest cell."""
    cells = [HEADER]
    for row in rows:
        checks = row.report.checks
        cells.append(
            (
                row.name,
                row.metric,
                f"{len(checks) - len(row.report.failures)}/{len(checks)}",
                f"{max((c.max_abs for c in checks), default=0.0):.1e}",
                "PASS" if row.passed else "FAIL",
                f"{row.seconds:.0f}s",
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = [cells[0], tuple("-" * w for w in widths), *cells[1:]]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )

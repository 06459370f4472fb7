"""``parity verify``: check a bundle, against its Keras model or its golden data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from parity.cli.commands import COMMANDS
from parity.cli.options import (
    check_output_file,
    check_outputs_apart,
    custom_objects_option,
    device_option,
    json_option,
    output_file_option,
    plot_option,
    seed_option,
    unsafe_option,
)


@click.command("verify", short_help=COMMANDS["verify"])
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(path_type=Path),
    help="Your own inputs: an .npz with one array per input name.",
)
@device_option("Where both runtimes run.")
@click.option(
    "--atol",
    multiple=True,
    metavar="[NAME=]VALUE",
    help="Absolute tolerance, for all outputs or one (repeatable).",
)
@click.option(
    "--rtol",
    multiple=True,
    metavar="[NAME=]VALUE",
    help="Relative tolerance, for all outputs or one (repeatable).",
)
@click.option(
    "--growth",
    type=click.FloatRange(min=0),
    default=None,
    help="Generation tolerance growth per step (tolerance x (1 + growth x step)).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Generation horizon (default: the manifest's).",
)
@click.option(
    "--batch",
    "batches",
    multiple=True,
    type=click.IntRange(min=1),
    help="Batch sizes to draw inputs for (repeatable; default 1, 3, 8).",
)
@click.option(
    "--time",
    "times",
    multiple=True,
    type=click.IntRange(min=1),
    help="Time lengths to draw inputs for where the time axis is dynamic "
    "(repeatable; default 5, 17).",
)
@seed_option("Seed of the drawn inputs.")
@click.option("--tf32", is_flag=True, help="Allow TF32 matmuls on a GPU (off by default).")
@click.option(
    "--strict",
    is_flag=True,
    help="Fail (exit 4) on findings about the model itself: padding that changes its "
    "output, an output that is the same for every input.",
)
@click.option(
    "--localise/--no-localise",
    default=None,
    help="Name the first layer whose output leaves its noise rule "
    "(default: only when a check fails).",
)
@unsafe_option()
@custom_objects_option()
@json_option("Write the report as JSON.")
@plot_option("Write error plots (PNG).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path),
    help="Check every row of a dataset: an .npz or Parquet file, or a folder of them.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per batch with --data (default: from the model's size).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="With --data: run in this process, or on Ray (pip install 'parity[ray]').",
)
@click.option("--ray-address", default=None, help="With --data: join this Ray cluster.")
@output_file_option(
    "--failures",
    "failures_path",
    help="With --data: write the worst failing rows' inputs here (.npz; default: beside --json).",
)
def command(paths: tuple[Path, ...], **flags: Any) -> None:
    """Verify BUNDLE, or verify SRC.keras BUNDLE side by side.

    \b
    parity verify BUNDLE              golden data only, no TensorFlow needed
    parity verify SRC.keras BUNDLE    TensorFlow and ONNX Runtime side by side
    parity verify SRC.keras BUNDLE --data PATH    ... on every row of a dataset

    Exits 0 when the runtimes agree, 1 when they disagree, 2 on bad input,
    3 when parity itself fails, 4 with --strict when the model itself has
    findings, 130 when interrupted.
    """
    from parity.runtime.npy import load_arrays
    from parity.verify.check import check
    from parity.verify.report import write_json

    if len(paths) == 1:
        model, bundle = None, paths[0]
    elif len(paths) == 2:
        model, bundle = paths
    else:
        raise click.UsageError("give BUNDLE, or SRC.keras BUNDLE")
    options = verify_options(flags)
    if flags["data_path"] is not None and flags["failures_path"] is None and flags["json_path"]:
        flags["failures_path"] = _failures_beside(flags["json_path"])
    outputs = ("json_path", "plot_path", "failures_path")
    check_outputs_apart(
        {f"--{name.removesuffix('_path')}": flags[name] for name in outputs},
        [model, bundle, flags["inputs_file"], flags["data_path"], flags["custom_objects"]],
    )
    inputs = load_arrays(flags["inputs_file"]) if flags["inputs_file"] else None

    def progress(message: str) -> None:
        if not flags["quiet"]:
            click.echo(f"... {message}", err=True)

    if flags["data_path"] is not None:
        _verify_dataset(model, bundle, options, progress, flags)
    report = check(bundle, model, options, inputs=inputs, progress=progress)
    click.echo(report.table())
    if flags["json_path"]:
        write_json(report, flags["json_path"])
    if flags["plot_path"]:
        from parity.verify.plot import plot_report

        plot_report(report, flags["plot_path"])
    raise SystemExit(exit_status(report, options.strict))


# The exit status of a verification whose runtimes agree but whose model
# itself has findings, with --strict (README, "Exit status").
EXIT_FINDINGS = 4


def exit_status(report: Any, strict: bool) -> int:
    """0 when the runtimes agree, 1 when they disagree; with ``strict``,
    :data:`EXIT_FINDINGS` for a report that agrees but has findings."""
    if not report.passed:
        return 1
    return EXIT_FINDINGS if strict and getattr(report, "findings", ()) else 0


def verify_options(flags: dict[str, Any]) -> Any:
    """The :class:`parity.verify.options.VerifyOptions` the flags ask for."""
    from parity.verify.options import DEFAULT_BATCHES, DEFAULT_TIMES, VerifyOptions
    from parity.verify.tolerance import policy_from_options

    return VerifyOptions(
        device=flags["device"],
        tf32=flags["tf32"],
        unsafe=flags["unsafe"],
        custom_objects=flags["custom_objects"],
        policy=policy_from_options(flags["atol"], flags["rtol"], flags["growth"]),
        steps=flags["steps"],
        seed=flags["seed"],
        batches=tuple(flags["batches"]) or DEFAULT_BATCHES,
        times=tuple(flags["times"]) or DEFAULT_TIMES,
        strict=flags["strict"],
        localise=flags["localise"],
    )


def _failures_beside(json_path: Path) -> Path | None:
    """Where ``--data`` writes the failing rows' inputs when only ``--json``
    is given: beside the report (none where the report goes to a device or
    stream), checked as ``--failures`` would be."""
    from parity.files import check_target

    if check_target(json_path).stream:
        return None
    return check_output_file(json_path.with_suffix(".failures.npz"))


def _verify_dataset(
    model: Path | None, bundle: Path, options: Any, progress: Any, flags: dict[str, Any]
) -> None:
    """``--data``: every row of a dataset; the worst failing rows' inputs go to
    ``--failures``, or beside the JSON report."""
    from parity.verify.dataset import check_dataset
    from parity.verify.dataset_report import write_failures
    from parity.verify.report import write_json

    if model is None or any(
        flags[name] for name in ("inputs_file", "plot_path", "batches", "times", "localise")
    ):
        raise click.UsageError(
            "--data needs SRC.keras BUNDLE and no --inputs, --plot, --batch, --time, --localise"
        )
    ray_address = flags["ray_address"]
    report = check_dataset(
        bundle,
        model,
        flags["data_path"],
        options,
        batch_size=flags["batch_size"],
        engine="ray" if ray_address else flags["engine"],
        ray_address=ray_address,
        progress=progress,
    )
    json_path, failures = flags["json_path"], flags["failures_path"]
    if failures and report.failed_inputs:
        report = write_failures(report, failures)
    click.echo(report.table())
    if json_path:
        write_json(report, json_path)
    raise SystemExit(0 if report.passed else 1)

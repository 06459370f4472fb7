"""Which tolerance applies to which comparison.

Defaults for float32, from measurements of the zoo on CPU (see README,
"Tolerances"): TensorFlow and ONNX Runtime differ by at most about 1e-6 on the
outputs of every zoo model, so the defaults leave an order of magnitude of
room and still catch a weight changed by 1e-3 of its size.

A generation feeds every output back as the next input, so rounding differences
compound over the horizon. The tolerance at step ``t`` (0-based) is the base
tolerance times ``1 + growth * t``: linear growth, which bounds the measured
error curves of the zoo's forecaster with room to spare and still fails a
generation that drifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from parity.runtime.errors import ParityError


@dataclass(frozen=True)
class Tolerance:
    """The allclose rule's two knobs."""

    atol: float
    rtol: float

    def scaled(self, factor: float) -> Tolerance:
        """Both knobs times ``factor`` (a generation's tolerance at a later step).

        Args:
            factor: the multiplier, 1 for the base tolerance.
        """
        return Tolerance(self.atol * factor, self.rtol * factor)


DEFAULT = Tolerance(atol=1e-5, rtol=1e-4)
DEFAULT_GROWTH = 0.05


@dataclass(frozen=True)
class TolerancePolicy:
    """The base tolerance, per-output overrides and the generation growth rule."""

    default: Tolerance = DEFAULT
    atol_overrides: Mapping[str, float] = field(default_factory=dict)
    rtol_overrides: Mapping[str, float] = field(default_factory=dict)
    growth: float = DEFAULT_GROWTH

    def for_output(self, name: str) -> Tolerance:
        """The tolerance of one output: its overrides, else the default.

        Args:
            name: the output's name.
        """
        return Tolerance(
            self.atol_overrides.get(name, self.default.atol),
            self.rtol_overrides.get(name, self.default.rtol),
        )

    def per_step(self, name: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """atol and rtol for each step of a generation.

        Args:
            name: the generated output's name.
            steps: the generation's number of steps.
        """
        base = self.for_output(name)
        factor = 1.0 + self.growth * np.arange(steps, dtype=np.float64)
        return base.atol * factor, base.rtol * factor


def parse_tolerances(values: Iterable[str], option: str) -> tuple[float | None, dict[str, float]]:
    """Split ``--atol 1e-5 --atol probs=1e-4`` into a default and overrides.

    Args:
        values: the option's values, each ``NUMBER`` or ``NAME=NUMBER``.
        option: the option as the user typed it, named in error messages.
    """
    default: float | None = None
    overrides: dict[str, float] = {}
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            parsed = float(number)
        except ValueError:
            raise ParityError(f"{option} {value!r}: expected a number or NAME=NUMBER") from None
        if not parsed >= 0:
            raise ParityError(f"{option} {value!r}: a tolerance must be a number >= 0")
        if name:
            overrides[name] = parsed
        else:
            default = parsed
    return default, overrides


def policy_from_options(
    atol: Iterable[str] = (), rtol: Iterable[str] = (), growth: float = DEFAULT_GROWTH
) -> TolerancePolicy:
    """The policy that the command line's tolerance options ask for.

    Args:
        atol: ``--atol`` values, each ``NUMBER`` (the default) or ``NAME=NUMBER``.
        rtol: ``--rtol`` values, likewise.
        growth: the generation growth rate (see the module's docstring).
    """
    atol_default, atol_overrides = parse_tolerances(atol, "--atol")
    rtol_default, rtol_overrides = parse_tolerances(rtol, "--rtol")
    base = Tolerance(
        DEFAULT.atol if atol_default is None else atol_default,
        DEFAULT.rtol if rtol_default is None else rtol_default,
    )
    return TolerancePolicy(base, atol_overrides, rtol_overrides, growth)

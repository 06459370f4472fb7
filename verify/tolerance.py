"""Which rule and which tolerance apply to which comparison.

The default rule measures each comparison against the model's own numerical
noise (:mod:`verify.noise`): TensorFlow runs the same weights again in float64,
the error of TensorFlow's float32 result against that float64 result is what
rounding alone does to this model on these inputs (the noise floor), and ONNX
Runtime's error against float64 must stay within :data:`NOISE_FACTOR` times it.
The factor comes from measurements on the zoo and the coverage models: on clean
bundles ONNX Runtime's error against float64 is at most about 3 times
TensorFlow's own (it sums in another order); a weight scaled by 1.01 moves
outputs by tens to thousands of times the floor.

Where float64 cannot run (a layer without float64 kernels), or where the
caller gives ``--atol``/``--rtol``, numpy's allclose rule
``|onnx - tf| <= atol + rtol * |tf|`` applies with the fixed defaults below or
the caller's values; each check says which rule it used.

A generation feeds every output back as the next input, so rounding differences
compound over the horizon. Under the noise rule the floor at step ``t`` is the
largest float32 noise of any step up to ``t``; under the allclose rule the
tolerance at step ``t`` (0-based) is the base tolerance times ``1 + growth * t``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from parity.runtime.errors import ParameterError, ParityError


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
# The allclose rule where ONNX Runtime's CUDA provider ran with TF32, which
# keeps 10 of float32's 23 mantissa bits (unit roundoff 2**-11, about 4.9e-4;
# a product of two rounded operands errs by up to twice that). Measured on an
# NVIDIA H200, ONNX Runtime 1.31.1, `parity demo`'s bundles against
# TensorFlow's float32 outputs: errors up to 8.1e-4 (at a value of 0.72), all
# within float32's tolerance without TF32.
TF32 = Tolerance(atol=1e-3, rtol=1e-3)
# ONNX Runtime's error against float64 may be at most this many times TensorFlow's.
NOISE_FACTOR = 10.0
# A relative tolerance this large passes an output of zeros against anything.
MAX_RTOL = 1.0
# The generation of the loop graph and of the step loop run the same kernels in
# the same runtime: they may differ by at most this many times the float32 noise.
PAIR_FACTOR = 1.0


@dataclass(frozen=True)
class TolerancePolicy:
    """The rule for each output: the noise rule unless the caller fixed a
    tolerance (for every output with ``fixed``, or per output by override).

    ``default`` is the allclose tolerance where the allclose rule applies;
    ``growth`` is the allclose rule's growth over a generation's steps (None:
    :data:`DEFAULT_GROWTH`, not given by the caller).

    A tolerance that would pass anything is refused when the policy is made:
    every value must be a finite number >= 0, and a relative tolerance below
    :data:`MAX_RTOL` (at 1, an output of zeros passes against any expected
    value); the noise factor must be finite and above 0."""

    default: Tolerance = DEFAULT
    atol_overrides: Mapping[str, float] = field(default_factory=dict)
    rtol_overrides: Mapping[str, float] = field(default_factory=dict)
    growth: float | None = None
    fixed: bool = False
    noise_factor: float = NOISE_FACTOR

    def __post_init__(self) -> None:
        values = [("atol", self.default.atol), ("rtol", self.default.rtol)]
        values += [("atol", v) for v in self.atol_overrides.values()]
        values += [("rtol", v) for v in self.rtol_overrides.values()]
        values += [("growth", self.growth)] if self.growth is not None else []
        for name, value in values:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ParameterError(name, f"must be a number, got {value!r}")
            if not 0 <= value < math.inf:
                raise ParameterError(name, f"must be a finite number >= 0, got {value}")
            if name == "rtol" and value >= MAX_RTOL:
                raise ParameterError(
                    name,
                    f"{value} would pass anything (at {MAX_RTOL:g}, an output of zeros passes); "
                    f"must be below {MAX_RTOL:g}",
                )
        if not 0 < self.noise_factor < math.inf:
            raise ParameterError(
                "noise_factor", f"must be finite and above 0, got {self.noise_factor}"
            )

    @property
    def growth_rate(self) -> float:
        """The allclose rule's growth per generation step."""
        return DEFAULT_GROWTH if self.growth is None else self.growth

    def for_output(self, name: str) -> Tolerance:
        """The allclose tolerance of one output: its overrides, else the default.

        Args:
            name: the output's name.
        """
        return Tolerance(
            self.atol_overrides.get(name, self.default.atol),
            self.rtol_overrides.get(name, self.default.rtol),
        )

    def uses_noise(self, name: str) -> bool:
        """Whether the noise rule applies to an output (given a float64 reference).

        Args:
            name: the output's name.
        """
        return not (self.fixed or name in self.atol_overrides or name in self.rtol_overrides)

    def per_step(self, name: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """atol and rtol for each step of a generation under the allclose rule.

        Args:
            name: the generated output's name.
            steps: the generation's number of steps.
        """
        base = self.for_output(name)
        factor = 1.0 + self.growth_rate * np.arange(steps, dtype=np.float64)
        return base.atol * factor, base.rtol * factor

    def check_outputs(self, outputs: Iterable[str]) -> None:
        """Refuse an override that names no output of the bundle.

        Args:
            outputs: every output name of the bundle's graphs.

        Raises:
            ParameterError: an override names an unknown output.
        """
        known = set(outputs)
        for option, overrides in (("atol", self.atol_overrides), ("rtol", self.rtol_overrides)):
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ParameterError(
                    option,
                    f"no output named {unknown[0]!r} in the bundle "
                    f"(outputs: {', '.join(sorted(known))})",
                )


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
        if not 0 <= parsed < math.inf:
            raise ParityError(f"{option} {value!r}: a tolerance must be a finite number >= 0")
        if name:
            overrides[name] = parsed
        else:
            default = parsed
    return default, overrides


def policy_from_options(
    atol: Iterable[str] = (), rtol: Iterable[str] = (), growth: float | None = None
) -> TolerancePolicy:
    """The policy that the command line's tolerance options ask for: the noise
    rule unless ``--atol``/``--rtol`` fix a tolerance.

    Args:
        atol: ``--atol`` values, each ``NUMBER`` (the default) or ``NAME=NUMBER``.
        rtol: ``--rtol`` values, likewise.
        growth: the allclose rule's generation growth rate; None when not given.
    """
    atol_default, atol_overrides = parse_tolerances(atol, "--atol")
    rtol_default, rtol_overrides = parse_tolerances(rtol, "--rtol")
    base = Tolerance(
        DEFAULT.atol if atol_default is None else atol_default,
        DEFAULT.rtol if rtol_default is None else rtol_default,
    )
    fixed = atol_default is not None or rtol_default is not None
    return TolerancePolicy(base, atol_overrides, rtol_overrides, growth, fixed)


def for_precision(policy: TolerancePolicy, tf32: bool) -> TolerancePolicy:
    """The policy for a run whose ONNX Runtime session used TF32: the
    allclose rule's stock tolerances become :data:`TF32`'s, since float32's
    would fail TF32's own rounding; tolerances the caller chose stay.

    Args:
        policy: the caller's policy.
        tf32: whether TF32 really ran (asked for, and the session is on a GPU).
    """
    if not tf32 or policy.fixed or policy.default != DEFAULT:
        return policy
    return replace(policy, default=TF32)

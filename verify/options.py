"""The settings of one verification, in one frozen object.

The command line builds a :class:`VerifyOptions` once from its flags; the
Python API takes one; :func:`parity.verify.check`, :func:`parity.verify.dataset.check_dataset`,
TensorFlow's side of a check and the dataset's Ray workers all receive the
same object, so that every setting is declared, checked and documented here
alone. It is plain data (it pickles), and checks its values when made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from parity.exporter.custom_objects import CustomObjects
from parity.runtime.errors import ParameterError
from parity.runtime.generate import check_steps
from parity.runtime.providers import DEVICES
from parity.verify.tolerance import TolerancePolicy

DEFAULT_BATCHES = (1, 3, 8)
DEFAULT_TIMES = (5, 17)


@dataclass(frozen=True)
class VerifyOptions:
    """How TensorFlow and ONNX Runtime are run and judged.

    Attributes:
        device: "auto", "cpu" or "gpu": where both runtimes run ("auto" takes
            the GPU where there is one). On a GPU, ONNX Runtime's CPU is also
            held against its GPU on the golden inputs.
        tf32: allow TF32 matmuls on a GPU, in both runtimes.
        unsafe: allow a Keras file that needs unsafe deserialization (a
            ``Lambda`` layer runs arbitrary code when loaded).
        custom_objects: the model's own classes and functions, for a model
            that needs them to load: the path of a Python file that defines
            them (trusted code, run in this process and in each worker), or
            a mapping of names to them (in this process only).
        policy: the rule and tolerances for every output.
        steps: the horizon of a seq2seq generation; the manifest's when None.
        seed: the seed of the random draws.
        batches: the batch sizes of the random draws (a seq2seq generation
            runs at the smallest and the largest).
        times: the time lengths of the random draws, where time is dynamic.
        strict: findings about the model itself (padding that changes its
            output, an output that never varies) fail the gate, with their
            own exit status; by default they are reported only.
        localise: name the first layer whose output leaves its noise rule
            (:mod:`parity.verify.localise`): None, when a check fails; True,
            always; False, never. Needs the Keras model.
    """

    device: str = "auto"
    tf32: bool = False
    unsafe: bool = False
    custom_objects: CustomObjects = None
    policy: TolerancePolicy = field(default_factory=TolerancePolicy)
    steps: int | None = None
    seed: int = 0
    batches: tuple[int, ...] = DEFAULT_BATCHES
    times: tuple[int, ...] = DEFAULT_TIMES
    strict: bool = False
    localise: bool | None = None

    def __post_init__(self) -> None:
        if self.localise not in (None, True, False):
            raise ParameterError("localise", f"must be None, True or False, got {self.localise!r}")
        if self.device not in DEVICES:
            raise ParameterError(
                "device", f"must be one of {', '.join(DEVICES)}, got {self.device!r}"
            )
        if self.steps is not None:
            check_steps(self.steps)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ParameterError("seed", f"must be a whole number >= 0, got {self.seed!r}")
        for name in ("batches", "times"):
            values = tuple(getattr(self, name))
            if not values or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
            ):
                raise ParameterError(name, f"must be whole numbers >= 1, got {values!r}")
            object.__setattr__(self, name, values)

"""Generation with ONNX Runtime's IO binding: states stay where the session runs.

:func:`runtime.generate` passes numpy arrays in and gets numpy arrays back at
every step; on a GPU that is a copy to the device and a copy back per state
per step. Here each step's outputs are bound as device values and fed to the
next step as they are, so only the encoder's outputs go in and the stacked
outputs come back. It is a benchmark of what the copies cost, for models that
feed their output back as it is (``feedback`` "identity"), the ones whose
feedback needs no host-side arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.runtime.errors import ParityError
from parity.runtime.generate import check_steps, start_input


def iobinding_generate(
    bundle: Any, encoder_inputs: Mapping[str, np.ndarray], *, steps: int | None = None
) -> np.ndarray:
    """``runtime.generate(bundle, encoder_inputs, steps=steps)`` with the step
    loop's tensors kept on the session's device. Returns ``(batch, steps, ...)``."""
    import onnxruntime as ort

    spec = bundle.manifest.seq2seq
    if spec is None:
        raise ParityError(f"{bundle.path}: not a seq2seq bundle; generation needs one")
    if spec.feedback != "identity":
        raise ParityError(
            f"{bundle.path}: IO binding generation feeds outputs back as they are; this "
            f"model's feedback is {spec.feedback!r}"
        )
    steps = check_steps(spec.steps if steps is None else steps)
    where = ("cuda" if bundle.device == "gpu" else "cpu", 0)
    encoded = bundle.run(encoder_inputs, graph=spec.encoder_graph)
    first = start_input(bundle.manifest, encoder_inputs)
    feeds = {spec.step_input: first}
    for state in spec.states:
        if state.init == "encoder":
            feeds[state.step_input] = encoded[state.encoder_output]
        else:
            feeds[state.step_input] = np.zeros((first.shape[0], state.size), np.float32)
    values = {
        name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), *where)
        for name, value in feeds.items()
    }
    session = bundle.session(spec.step_graph)
    binding = session.io_binding()
    names = [spec.step_output, *(state.step_output for state in spec.states)]
    state_inputs = [state.step_input for state in spec.states]
    outputs = []
    for _ in range(steps):
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, *where)
        session.run_with_iobinding(binding)
        output, *states = binding.get_outputs()
        binding.clear_binding_outputs()
        outputs.append(output)
        values[spec.step_input] = output
        values.update(zip(state_inputs, states, strict=True))
    return np.concatenate([output.numpy() for output in outputs], axis=1)

"""Padding invariance as a property: any lengths, any padding length, in ONNX Runtime."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import runtime
from parity.runtime.sampling import sample_inputs


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_rows_alone_equal_rows_in_a_padded_batch(exported_zoo, data):
    _, manifest, path = exported_zoo["masked_lstm"]
    bundle = runtime.load_bundle(path, device="cpu")
    spec = manifest.graph("model").inputs[0]
    time = spec.shape[1]
    batch = data.draw(st.integers(1, 5), label="batch")
    lengths = np.array(data.draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch)))
    seed = data.draw(st.integers(0, 10_000), label="seed")
    sample = sample_inputs([spec], batch, seed=seed, mask=manifest.mask, lengths=lengths)
    together = bundle.run(sample.inputs)["probs"]
    for row in range(batch):
        alone = bundle.run({spec.name: sample.inputs[spec.name][row : row + 1]})["probs"]
        np.testing.assert_allclose(alone[0], together[row], atol=1e-5, rtol=1e-4)
    if not manifest.mask.fused:  # the general masked graph skips masked steps anywhere
        pre = np.full_like(sample.inputs[spec.name], manifest.mask.value)
        for row, length in enumerate(lengths):
            pre[row, time - length :] = sample.inputs[spec.name][row, :length]
        np.testing.assert_allclose(
            bundle.run({spec.name: pre})["probs"], together, atol=1e-5, rtol=1e-4
        )

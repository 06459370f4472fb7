"""Fault injection: every graph file of a bundle, damaged one weight at a time,
must fail verification against TensorFlow.

TensorFlow's side (float32 and float64) is computed once per model; each
damaged copy of the bundle is then judged by ONNX Runtime alone
(``verify.stored.replay``), so hundreds of faults take seconds. Each weight
(float initializer) of each graph file is scaled by 1.01 (every one must be
caught) and by 1.001 (the share caught is printed: run with ``-s``), and
structural faults are injected where the graph has the op they need.
"""

from functools import partial

import keras
import numpy as np
import onnx
import pytest

from parity import runtime
from parity.cli.support_matrix import cases
from parity.exporter import export_keras, export_model
from parity.runtime.bundle_format.manifest import read_manifest
from parity.verify.check import tensorflow_run
from parity.verify.options import VerifyOptions
from parity.verify.runners import select_device
from parity.verify.stored import replay
from parity.verify.tolerance import TolerancePolicy
from tests import faults

SAMPLE = 50  # at most this many weights per graph file, drawn with a fixed seed
POLICY = TolerancePolicy()


def token_gru(vocab: int = 30) -> keras.Model:
    """A token seq2seq model: Embedding and GRU encoder and decoder, a softmax
    over ``vocab`` tokens (probabilities around 1/vocab: small outputs)."""
    keras.utils.set_random_seed(7)
    source = keras.Input((None,), dtype="int32", name="source")
    target = keras.Input((None,), dtype="int32", name="target")
    h = keras.layers.Embedding(vocab, 8, name="source_embedding")(source)
    _, state = keras.layers.GRU(16, return_state=True, name="enc_gru")(h)
    y = keras.layers.Embedding(vocab, 8, name="target_embedding")(target)
    y = keras.layers.GRU(16, return_sequences=True, name="dec_gru")(y, initial_state=state)
    probs = keras.layers.Dense(vocab, activation="softmax", name="probs")(y)
    return keras.Model([source, target], probs)


def _coverage_model(name: str):
    return next(case for case in cases() if case.name == name).build()


@pytest.fixture(scope="module")
def subjects(trained_zoo, tmp_path_factory):
    """name -> (bundle path, TensorFlow's run), each model exported and run once."""
    folder = tmp_path_factory.mktemp("fault_subjects")
    device = select_device("cpu", False)
    built = {}
    for name in ("masked_lstm", "sine_seq2seq"):
        built[name] = (trained_zoo[name].model, partial(export_keras, trained_zoo[name].path))
    built["token_gru"] = (token_gru(), None)
    built["gru_masked"] = (_coverage_model("GRU return_sequences mask=Masking"), None)
    result = {}
    for name, (model, export) in built.items():
        path = folder / name
        if export is not None:
            export(path)
        else:
            from parity.exporter.seq2seq_bundle import export_seq2seq

            if name == "token_gru":
                export_seq2seq(model, path, source_info={"name": name}, golden_batch=1)
            else:
                export_model(model, path)
        bundle = runtime.load_bundle(path, device="cpu")
        run = tensorflow_run(bundle, model, device, VerifyOptions(batches=(1, 4), times=(6,)))
        result[name] = (path, run)
    return result


def _judged(run, damaged) -> tuple[bool, tuple]:
    """Whether the bundle at ``damaged`` fails, and what ONNX Runtime computed
    (each check's errors: equal for two bundles that compute the same)."""
    bundle = runtime.load_bundle(damaged, device="cpu")
    try:
        checks, _ = replay(bundle, run, POLICY)
    except runtime.errors.RunError as exc:
        return True, (str(exc),)
    return not all(c.passed for c in checks), tuple((c.max_abs, c.error) for c in checks)


def _caught(path, run, damaged) -> bool:
    return _judged(run, damaged)[0]


def _weights(path):
    """(graph key, initializer name) of every weight, a seeded sample where a
    graph file has more than ``SAMPLE``."""
    manifest = read_manifest(path)
    rng = np.random.default_rng(0)
    chosen = []
    for key, spec in manifest.graphs.items():
        names = faults.float_initializers(onnx.load(path / spec.file))
        if len(names) > SAMPLE:
            names = sorted(rng.choice(names, SAMPLE, replace=False))
        chosen += [(key, name) for name in names]
    return chosen


@pytest.mark.parametrize("name", ["masked_lstm", "sine_seq2seq", "token_gru", "gru_masked"])
def test_clean_bundle_passes_and_every_scaled_weight_is_caught(subjects, tmp_path, name):
    """A weight whose change leaves every output bit for bit as it was (a
    float constant compared with a loop counter) is no fault and is not counted."""
    path, run = subjects[name]
    failed, clean = _judged(run, path)
    assert not failed, "the clean bundle fails"
    weights = _weights(path)
    assert weights
    lines = []
    for factor in (1.01, 1.001):
        missed, inert = [], 0
        for index, (key, weight) in enumerate(weights):
            out = tmp_path / f"{factor}-{index}"
            fault = faults.scale_initializer(weight, factor)
            caught, computed = _judged(run, faults.damaged_copy(path, out, fault, graph=key))
            if computed == clean:
                inert += 1
            elif not caught:
                missed.append(f"{key}:{weight}")
        effective = len(weights) - inert
        lines.append(f"x{factor}: {effective - len(missed)}/{effective} caught ({inert} inert)")
        if factor == 1.01:
            assert not missed, f"{name}: scaled by 1.01 and not caught: {missed}"
    print(f"\n{name}: {len(weights)} weights; " + "; ".join(lines))


STRUCTURAL = {
    "masked_lstm": {
        "bias set to zero": ("model", faults.zero_fused_bias),
        "gates swapped": ("model", faults.swap_fused_gates),
        "mask dropped": ("model", faults.drop_sequence_lens),
        "time reversed": ("model", faults.reverse_time),
    },
    "gru_masked": {  # untrained: its biases are zero already
        "gates swapped": ("model", faults.swap_fused_gates),
        "mask dropped": ("model", faults.drop_sequence_lens),
        "time reversed": ("model", faults.reverse_time),
    },
    "sine_seq2seq": {"encoder time reversed": ("encoder", faults.reverse_time)},
    "token_gru": {"encoder time reversed": ("encoder", faults.reverse_time)},
}


@pytest.mark.parametrize(
    ("name", "fault"), [(name, fault) for name, table in STRUCTURAL.items() for fault in table]
)
def test_structural_fault_is_caught(subjects, tmp_path, name, fault):
    path, run = subjects[name]
    graph, damage = STRUCTURAL[name][fault]
    assert _caught(path, run, faults.damaged_copy(path, tmp_path / "d", damage, graph=graph))

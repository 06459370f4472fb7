"""Running parity bundles with ONNX Runtime and numpy alone.

This is the part that other applications embed: it never imports TensorFlow.

    from parity import runtime
    bundle = runtime.load_bundle("bundles/masked_lstm")
    probs = bundle.run({"sequence": x})["probs"]
    sine = runtime.load_bundle("bundles/sine_seq2seq")
    forecast = runtime.generate(sine, {"encoder_input": x}, steps=150)
    stream = runtime.open_stream("bundles/tagger_stream", batch=1)
    tags = stream.feed(chunk)["tags"]  # states carried to the next chunk
"""

from parity.runtime.bundle import Bundle, load_bundle
from parity.runtime.bundle_format.manifest import Manifest, read_manifest
from parity.runtime.errors import (
    BundleError,
    InputError,
    LimitError,
    ParameterError,
    ParityError,
    RunError,
)
from parity.runtime.generate import MAX_STEPS, generate, start_input
from parity.runtime.stream import Stream, open_stream

__all__ = [
    "MAX_STEPS",
    "Bundle",
    "BundleError",
    "InputError",
    "LimitError",
    "Manifest",
    "ParameterError",
    "ParityError",
    "RunError",
    "Stream",
    "generate",
    "load_bundle",
    "open_stream",
    "read_manifest",
    "start_input",
]

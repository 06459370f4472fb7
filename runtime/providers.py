"""Choosing ONNX Runtime's execution providers, and saying which ones really ran.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` among its available
providers even on a machine without a GPU (or without the CUDA libraries), and
a session asked for CUDA there silently falls back to the CPU. So a device is
chosen by trying: CUDA is used only when a session really gets it, and the
providers reported are the session's own (``session.get_providers()``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
from pathlib import Path
from typing import Any

from parity.runtime.bounds import UNBOUNDED_OPTIMIZERS, bound_memory
from parity.runtime.errors import BundleError, ParityError, quoted

DEVICES = ("auto", "cpu", "gpu")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# How long ONNX Runtime's idle intra-op workers spin before they sleep (its
# default is far longer). Measured on a shared 2-core CPU, seq2seq
# generation at batch 470: with the default, a second busy process on the
# machine made a run 2.2x slower than alone (and batch 1 up to 2.7x), since
# the spinning workers took the core the other process needed; with 20 us
# spinning, a run alone is as fast as with the default and one beside a
# busy process 10% faster. Turning spinning off costs 10% alone.
SPIN_DURATION_US = 20
# A CPU session for one-row batches runs on this many intra-op threads: a
# one-row op is too small to split, so more threads only add the cost of
# waking and joining them. Measured on a shared 2-core CPU, the two graphs'
# sessions interleaved, outputs bit for bit equal: seed ``sine_seq2seq``
# generation 3.0 ms against 3.3 ms (10th percentile), ``masked_lstm`` 95 us
# against 102 us, ``conv_rows_lstm`` equal.
SINGLE_ROW_THREADS = 1
# Except in a graph whose convolutions do at least this many multiply-adds
# per image: ONNX Runtime splits a convolution's output over its threads,
# which pays within one row once the convolution is large enough. Measured
# on a 2-core Intel Xeon (AVX-512) at batch 1, one thread against two: the
# seed ``td_cnn_lstm`` (85 million per 224 x 224 frame) 30.8 against 19.5
# ms; the seed ``conv_rows_lstm`` (5 million per image) 98 against 74 us;
# the tiny ``conv_rows_lstm`` (6,800) 15 against 21 us.
ONE_ROW_SPLIT_MACS = 1_000_000


# The two distributions of ONNX Runtime; both install the package ``onnxruntime``.
BUILDS = ("onnxruntime", "onnxruntime-gpu")
_logger = logging.getLogger("parity")


@functools.cache
def onnxruntime() -> Any:
    """The ``onnxruntime`` module, imported once: a ParityError that says how
    to install it where it is missing or broken, and one warning line where
    both builds are installed (they share one folder: the last installed
    overwrote the other's files, and uninstalling either breaks both)."""
    installed, folders = [], set()
    for build in BUILDS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found = importlib.metadata.distribution(build)
            installed.append(f"{build} {found.version}")
            folders.add(Path(str(found.locate_file("onnxruntime"))).resolve())
    if len(installed) > 1 and len(folders) == 1:  # builds in separate folders do not collide
        _logger.warning(
            "warning: both %s are installed into one onnxruntime folder, which holds whichever "
            "came last; to fix: pip uninstall -y onnxruntime onnxruntime-gpu, then pip install "
            "the one you want",
            " and ".join(installed),
        )
    try:
        import onnxruntime as ort

        ort.SessionOptions  # noqa: B018  (missing when one build was removed over the other)
    except ImportError:
        raise ParityError(
            "ONNX Runtime is not installed: pip install 'parity[onnxruntime]' (the CPU build) "
            "or 'parity[onnxruntime-gpu]'"
        ) from None
    except AttributeError:
        raise ParityError(
            "ONNX Runtime's install is broken (onnxruntime and onnxruntime-gpu were installed "
            "into one folder and one was removed): pip uninstall -y onnxruntime "
            "onnxruntime-gpu, then pip install the one you want"
        ) from None
    return ort


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ParityError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    return device


def requested_providers(device: str, tf32: bool = False) -> list[Any]:
    """The provider list a session is created with. TF32 is off on CUDA unless
    asked for: ONNX Runtime turns it on by default, which makes float32 results
    differ from the CPU's in the fourth digit."""
    check_device(device)
    if device == "cpu" or not cuda_usable():
        return [CPU]
    return [(CUDA, {"use_tf32": "1" if tf32 else "0"}), CPU]


@functools.cache
def cuda_usable() -> bool:
    """Whether a CUDA session can really be created on this machine (probed
    once per process with a one-node graph)."""
    ort = onnxruntime()

    if CUDA not in ort.get_available_providers():
        return False
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    _preload_cuda_libraries(ort)
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4
    ort.set_default_logger_severity(4)  # the failed CUDA load logs an error otherwise
    try:
        session = ort.InferenceSession(model.SerializeToString(), quiet, providers=[CUDA, CPU])
        return session.get_providers()[0] == CUDA
    except Exception:  # any failure to create the provider means: no usable GPU
        return False
    finally:
        ort.set_default_logger_severity(2)


def _preload_cuda_libraries(ort: Any) -> None:
    """Load CUDA and cuDNN from the pip packages of the ``gpu`` extra when they
    are installed; a system CUDA is found by the loader without this."""
    from importlib.util import find_spec

    if find_spec("nvidia") is not None and hasattr(ort, "preload_dlls"):
        # A partial CUDA install fails here; the session probe then decides.
        with contextlib.suppress(Exception):
            ort.preload_dlls()


def open_session(
    graph: bytes | Path, path: Path, device: str, tf32: bool = False, threads: int = 0
) -> Any:
    """An ONNX Runtime session for ``graph`` (its serialized bytes, or its
    file) on ``device``, on ``threads`` intra-op threads (0: ONNX Runtime's
    choice, one per core), allocating within the memory limit of
    :mod:`parity.runtime.bounds`; ``path`` names the graph's file in errors."""
    ort = onnxruntime()

    options = ort.SessionOptions()
    options.log_severity_level = 3
    bound_memory(options)
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_DURATION_US))
    try:
        source = graph if isinstance(graph, bytes) else str(graph)
        session = ort.InferenceSession(
            source,
            options,
            providers=requested_providers(device, tf32),
            disabled_optimizers=UNBOUNDED_OPTIMIZERS,
        )
    except Exception as exc:
        reason = quoted(exc)
        raise BundleError(f"{path}: ONNX Runtime cannot load this graph ({reason})") from None
    if device == "gpu" and session.get_providers()[0] != CUDA:
        raise ParityError(
            "--device gpu: ONNX Runtime cannot run on a GPU here "
            f"(its session got {', '.join(session.get_providers())})"
        )
    return session


def session_device(session: Any) -> str:
    return "gpu" if session.get_providers()[0] == CUDA else "cpu"

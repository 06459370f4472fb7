"""The ONNX ops a model's recurrent layers became, in the support matrix's words."""

from __future__ import annotations

from typing import Any

from parity.exporter.rnn_scan import BODY as RNN_SCAN_BODY

RECURRENT_OPS = ("LSTM", "GRU", "RNN", "Loop", "Scan")


def recurrent_ops(proto: Any) -> str:
    """The recurrent nodes of an ONNX model (:func:`described_op`), each kind
    once, sorted and joined, or "none"."""
    found = {described_op(node) for node in proto.graph.node if node.op_type in RECURRENT_OPS}
    return ", ".join(sorted(found)) or "none"


def described_op(node: Any) -> str:
    """A recurrent node in the matrix's words: its op, and whether it has
    per-row lengths; the scan an ``RNN`` op is written as says so."""
    if node.op_type == "Scan" and node.attribute[0].g.name == RNN_SCAN_BODY:
        return f"{node.doc_string} as Scan"
    has_lengths = node.op_type in ("LSTM", "GRU", "RNN") and len(node.input) > 4 and node.input[4]
    return node.op_type + (" with sequence_lens" if has_lengths else "")

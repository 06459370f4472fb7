"""``parity bench``: how fast TensorFlow (Keras, ``tf.function``, XLA, LiteRT)
and ONNX Runtime run the zoo, side by side, and how far each is from the
machine's own float32 GEMM throughput.

- ``bench.timing``: time one callable, or several taking turns (warm-up,
  repeats, median/min/max);
- ``bench.flops``: count a Keras model's operations from its layers;
- ``bench.floor``: numpy GEMM throughput, the floor every row is held to;
- ``bench.cases``: what is timed, model by model;
- ``bench.iobinding``: generation with tensors kept on the session's device;
- ``bench.xla``, ``bench.litert``: TensorFlow compiled with XLA, and LiteRT;
- ``bench.machine``, ``bench.result``, ``bench.run``: the record of one run;
- ``bench.report``: the table, the JSON (schema there) and the chart.

Importing this package imports neither TensorFlow nor ONNX Runtime.
"""

from parity.bench.timing import Timing, measure

__all__ = ["Timing", "measure"]

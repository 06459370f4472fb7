"""The floor: float32 GEMM throughput measured with numpy in the same run.

Recurrent models spend their time in matrix products, so what the machine's
BLAS reaches on a large square GEMM bounds what any runtime can reach, and
the throughput at the size of a model's own gate products says how much of
that bound small products leave. Both are measured beside the models, on the
same machine and at the same moment, because shared machines drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from parity.bench.timing import Timing, measure

# The large square product that stands for the machine's peak.
SQUARE = 2048


@dataclass(frozen=True)
class Gemm:
    """One GEMM ``(m x k) @ (k x n)`` in float32 and how fast numpy ran it."""

    m: int
    k: int
    n: int
    timing: Timing

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    @property
    def label(self) -> str:
        return f"({self.m}x{self.k}) @ ({self.k}x{self.n})"


def measure_gemm(m: int, k: int, n: int, *, warmup: int = 2, repeats: int = 5) -> Gemm:
    """Time ``numpy.matmul`` of random float32 matrices into a preallocated output."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    return Gemm(m, k, n, measure(lambda: np.matmul(a, b, out=out), warmup, repeats))


def measure_floor(
    sizes: Iterable[tuple[int, int, int]], *, warmup: int = 2, repeats: int = 5
) -> tuple[Gemm, ...]:
    """The large square GEMM first (the peak), then each distinct size given,
    smallest first."""
    distinct = [(SQUARE, SQUARE, SQUARE)]
    distinct += sorted(
        set(map(tuple, sizes)) - set(distinct), key=lambda s: (s[0] * s[1] * s[2], s)
    )
    return tuple(measure_gemm(*size, warmup=warmup, repeats=repeats) for size in distinct)


def peak_gflops(gemms: Iterable[Gemm]) -> float:
    """The best throughput measured: the rate the floor time of a model is taken at."""
    return max(gemm.gflops for gemm in gemms)

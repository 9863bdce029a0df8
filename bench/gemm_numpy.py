"""fp32 matmul timings with numpy (its BLAS) for bench/gemm.ts.

usage: gemm_numpy.py REPS M,K,N [M,K,N ...]
For each shape, times y = x @ w.T with x [M, K] and w [N, K] (float32), one warm-up then REPS runs, and prints
one JSON object per line: {"shape": [M, K, N], "median_s": ..., "gflops": ...}.
"""
import json
import sys
import time

import numpy as np


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: gemm_numpy.py REPS M,K,N [M,K,N ...]")
    reps = int(sys.argv[1])
    for spec in sys.argv[2:]:
        m, k, n = (int(v) for v in spec.split(","))
        x = (np.arange(m * k, dtype=np.float32).reshape(m, k) % 1000) / 1000 - 0.5
        w = (np.arange(n * k, dtype=np.float32).reshape(n, k) % 997) / 997 - 0.5
        y = x @ w.T  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            y = x @ w.T
            times.append(time.perf_counter() - t0)
        assert y.shape == (m, n)
        med = sorted(times)[len(times) // 2]
        print(json.dumps({"shape": [m, k, n], "median_s": med, "gflops": 2 * m * n * k / med / 1e9}), flush=True)


if __name__ == "__main__":
    main()

"""fp32 matmul timings of a reference library for bench/gemm.ts: numpy (its BLAS, on the CPU) or torch on CUDA.

usage: gemm_baseline.py numpy|torch-cuda REPS INNER M,K,N [M,K,N ...]
For each shape, times y = x @ w.T with x [M, K] and w [N, K] (float32): one warm-up, then REPS timings of INNER
back-to-back products each (torch-cuda synchronises before and after each timing; TF32 is switched off, so the
products are true fp32), and prints one JSON object per line:
{"shape": [M, K, N], "median_s": seconds per product, "gflops": ..., "backend": ..., "device": ..., "blas": ...}.
"blas" names the BLAS library numpy's process has loaded (from /proc/self/maps, after the first product): Debian's
python3-numpy without libopenblas0-pthread runs the reference BLAS (libblas.so.3, ~4 GFLOP/s), which no one would
use as a baseline, so bench/gemm.ts warns when it sees that.
Exits 3 with a message when the backend is unavailable (numpy or torch not importable, no CUDA device).
"""
import json
import sys
import time


def loaded_blas() -> str:
    """File name of the BLAS/LAPACK-providing library mapped into this process, or "unknown"."""
    try:
        with open("/proc/self/maps") as f:
            names = {line.split()[-1].rsplit("/", 1)[-1] for line in f if "/" in line}
    except OSError:
        return "unknown"
    for key in ("openblas", "mkl", "blis", "libblas", "accelerate"):
        hits = sorted(n for n in names if key in n.lower())
        if hits:
            return hits[0]
    return "unknown"


def main() -> None:
    if len(sys.argv) < 5 or sys.argv[1] not in ("numpy", "torch-cuda"):
        sys.exit("usage: gemm_baseline.py numpy|torch-cuda REPS INNER M,K,N [M,K,N ...]")
    backend, reps, inner = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        import numpy as np
    except ImportError as e:
        print(f"cannot import numpy ({e})", file=sys.stderr)
        sys.exit(3)
    sync = lambda: None  # noqa: E731
    device = "cpu"
    if backend == "torch-cuda":
        try:
            import torch
        except ImportError as e:
            print(f"cannot import torch ({e})", file=sys.stderr)
            sys.exit(3)
        if not torch.cuda.is_available():
            print("torch has no CUDA device", file=sys.stderr)
            sys.exit(3)
        torch.backends.cuda.matmul.allow_tf32 = False
        sync = torch.cuda.synchronize
        device = torch.cuda.get_device_name(0)
    blas = "cuBLAS" if backend == "torch-cuda" else None
    for spec in sys.argv[4:]:
        m, k, n = (int(v) for v in spec.split(","))
        x = (np.arange(m * k, dtype=np.float32).reshape(m, k) % 1000) / 1000 - 0.5
        w = (np.arange(n * k, dtype=np.float32).reshape(n, k) % 997) / 997 - 0.5
        if backend == "torch-cuda":
            x, w = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()
        y = x @ w.T  # warm-up
        sync()
        if blas is None:
            blas = loaded_blas()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                y = x @ w.T
            sync()
            times.append((time.perf_counter() - t0) / inner)
        assert tuple(y.shape) == (m, n)
        med = sorted(times)[len(times) // 2]
        print(json.dumps({"shape": [m, k, n], "median_s": med, "gflops": 2 * m * n * k / med / 1e9,
                          "backend": backend, "device": device, "blas": blas}), flush=True)


if __name__ == "__main__":
    main()

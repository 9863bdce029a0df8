"""fp32 matmul timings of a reference library for bench/gemm.ts: numpy (its BLAS, on the CPU) or torch on CUDA.

usage: gemm_baseline.py numpy|torch-cuda REPS INNER M,K,N [M,K,N ...]
For each shape, times y = x @ w.T with x [M, K] and w [N, K] (float32): one warm-up, then REPS timings of INNER
back-to-back products each (torch-cuda synchronises before and after each timing; TF32 is switched off, so the
products are true fp32), and prints one JSON object per line:
{"shape": [M, K, N], "median_s": seconds per product, "gflops": ..., "backend": ..., "device": ..., "blas": ...,
"blas_reference": ...}. "blas" names the BLAS library numpy ran on (from /proc/self/maps after the first product:
the libblas.so.3 that Debian's alternatives chose, with its folder, else a bundled OpenBLAS/MKL/BLIS);
"blas_reference" is true for Debian's reference BLAS (`.../blas/libblas.so.3`, ~4 GFLOP/s), which python3-numpy
runs when libopenblas0-pthread is absent or not selected, and which no one would use as a baseline: bench/gemm.ts
warns then.
Exits 3 with a message when the backend is unavailable (numpy or torch not importable, no CUDA device).
"""
import json
import sys
import time


def loaded_blas() -> tuple[str, bool]:
    """The BLAS this process computes with, as "folder/file", and whether it is Debian's reference BLAS.

    Debian's numpy calls libblas.so.3 (or libcblas.so.3), which its alternatives point at the reference BLAS
    (/usr/lib/<triplet>/blas/) or an optimised one (e.g. openblas-pthread/); other libraries can be mapped too
    (LAPACK from OpenBLAS pulls in libopenblas even when BLAS is the reference one), so libblas comes first.
    Wheels from PyPI bundle their own OpenBLAS (no libblas.so.3)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return "unknown", False
    short = lambda p: "/".join(p.rsplit("/", 2)[-2:])  # noqa: E731
    for prefix in ("libblas.so", "libcblas.so"):
        hits = sorted(p for p in paths if p.rsplit("/", 1)[-1].startswith(prefix))
        if hits:
            return short(hits[0]), hits[0].rsplit("/", 2)[-2] == "blas"
    for key in ("openblas", "mkl", "blis", "accelerate"):
        hits = sorted(p for p in paths if key in p.rsplit("/", 1)[-1].lower())
        if hits:
            return short(hits[0]), False
    return "unknown", False


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
    blas, reference = ("cuBLAS", False) if backend == "torch-cuda" else (None, False)
    for spec in sys.argv[4:]:
        m, k, n = (int(v) for v in spec.split(","))
        x = (np.arange(m * k, dtype=np.float32).reshape(m, k) % 1000) / 1000 - 0.5
        w = (np.arange(n * k, dtype=np.float32).reshape(n, k) % 997) / 997 - 0.5
        if backend == "torch-cuda":
            x, w = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()
        y = x @ w.T  # warm-up
        sync()
        if blas is None:
            blas, reference = loaded_blas()
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
                          "backend": backend, "device": device, "blas": blas,
                          "blas_reference": reference}), flush=True)


if __name__ == "__main__":
    main()

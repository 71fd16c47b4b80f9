#!/usr/bin/python3
"""A 10^7-point curve_fit in bounded memory, checked against scipy on a subset.

    PYTHONPATH=python /usr/bin/python3 python/examples/big_curve_fit.py [N]

Makes N points (default 10^7) of y = 3 exp(-1.3 t) + 0.5 sin(2 t) + 0.2 plus
deterministic noise, filled chunk by chunk so that only x and y (16 N bytes)
are held.  Then:
  1. nlsqc.curve_fit on all N points, finite differences (no jac), chunks of
     65536 points: prints the parameters, their errors, the time, and the
     process's resident memory before the fit and its peak after (VmRSS,
     VmHWM from /proc/self/status);
  2. nlsqc.curve_fit and scipy.optimize.curve_fit on the first 200000
     points: prints both and their largest relative difference (exit 1 if
     above 1e-6).
"""
import sys
import time

import numpy as np

import nlsqc


def vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # MiB
    return float("nan")


def model(t, a, b, c, w, d):
    return a * np.exp(-b * t) + c * np.sin(w * t) + d


def main():
    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 10_000_000
    t = np.empty(n)
    y = np.empty(n)
    step = 1 << 20
    for i in range(0, n, step):
        k = np.arange(i, min(n, i + step), dtype=np.float64)
        t[i:i + k.size] = 10.0 * k / n
        y[i:i + k.size] = (model(t[i:i + k.size], 3.0, 1.3, 0.5, 2.0, 0.2)
                           + 0.05 * np.sin(12.9898 * k) * np.cos(78.233 * k))
    p0 = [1.0, 1.0, 0.3, 1.8, 0.0]
    rss0, hwm0 = vm("VmRSS"), vm("VmHWM")
    t0 = time.perf_counter()
    popt, pcov, info = nlsqc.curve_fit(model, t, y, p0=p0, chunk_rows=65536, full_output=True)
    secs = time.perf_counter() - t0
    print("N = %d: %s, %d iterations, %d passes, %.1f s" % (n, info.status_name, info.iterations,
                                                            info.nfev, secs))
    print("  popt   %s" % np.array2string(popt, precision=8))
    print("  errors %s" % np.array2string(np.sqrt(np.diag(pcov)), precision=3))
    print("  memory: x and y %.0f MiB; RSS before the fit %.0f MiB (peak so far %.0f MiB), "
          "peak after %.0f MiB" % (16.0 * n / 2**20, rss0, hwm0, vm("VmHWM")))

    from scipy import optimize
    m = 200_000
    ts, ys = 10.0 * np.arange(m) / m, None
    ys = model(ts, 3.0, 1.3, 0.5, 2.0, 0.2) + 0.05 * np.sin(12.9898 * np.arange(m)) * np.cos(
        78.233 * np.arange(m))
    a, _ = nlsqc.curve_fit(model, ts, ys, p0=p0, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    b, _ = optimize.curve_fit(model, ts, ys, p0=p0, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    d = np.max(np.abs(a - b) / np.abs(b))
    print("subset of %d points: nlsqc %s\n                        scipy %s\n  max rel diff %.2e"
          % (m, np.array2string(a, precision=10), np.array2string(b, precision=10), d))
    return 0 if d <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())

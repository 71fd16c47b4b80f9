#!/usr/bin/env python3
"""Would a test-inversion profile interval cover?  An idealised check at the truth.

A K-sigma profile interval is the set of t where a test of theta_j = t
accepts.  fit_xpcs's test compares D(t) = 2 (C_j(t) - C_min) / s^2 with
K^2 c (docs/uncertainties.md).  A test inversion would compare it with the
K-sigma quantile q*(t) of D's own distribution when theta_j = t, drawn by
simulation from the held fit at t.  Its interval covers the truth exactly
when D(truth) <= q*(truth), so the coverage can be measured without
searching for the ends:

  per seed: write the test file (xpcs_synth, frame-shared noise as the
  corrprofile scenario of scripts/coverage_xpcs.py); D(truth) from a fit
  and a held fit (theta_j = truth), both from the truth; then B files drawn
  by xpcs_synth at the held fit's physical parameters with the same noise
  model, each with its own D* (a fit and a held fit from that point);
  covered at K sigma when D(truth) <= the P(|Z| <= K) quantile of the B
  values D*.

Idealised: the replicates come from the test's own noise model, and
D(truth) is a held fit from the truth, not the profile's path (not always
the held minimum: docs/uncertainties.md "A test inversion").  Prints one
JSON line per seed and the coverage at 1 and 2 sigma.

With --resampler wild the same coverage is measured on what fit_xpcs ships:
one `fit_xpcs --test NAME=TRUTH --boot B` per seed (nlsq_profile_test: the
held fit by continuation from the fit, the wild cluster bootstrap over
frames with --errors robust, over entries with --errors default), for
several parameters at once; a seed without a usable fit counts as a miss.

  scripts/inversion_xpcs.py --build build --param gamma_dot_0 --seeds 100 --boot 40
  scripts/inversion_xpcs.py --build build --resampler wild \
      --param gamma_dot_0,gamma_dot_offset --seeds 100 --boot 40
"""
import argparse
import json
import math
import os
import tempfile

from coverage_xpcs import FRAME_SHARE, TRUTH, fit, init_args, synth


def statistic(args, path, start, held_cfg):
    """D = 2 (C_held - C_min) / s^2, both solves from start; the two fits."""
    extra = ["--start", "local"] + init_args(start)
    f = fit(args, path, extra)
    h = fit(args, path, extra + ["--config", held_cfg])
    if f is None or h is None:
        raise SystemExit("inversion_xpcs.py: fit_xpcs failed on %s" % path)
    return 2.0 * (h["cost"] - f["cost"]) / f["reduced_chi2"], f, h


def quantile(sorted_v, p):
    """The p quantile, linear between order statistics (numpy's default)."""
    x = p * (len(sorted_v) - 1)
    i = int(math.floor(x))
    j = min(i + 1, len(sorted_v) - 1)
    return sorted_v[i] + (x - i) * (sorted_v[j] - sorted_v[i])


def wild_seed(args, tmp, s, params):
    """One seed by fit_xpcs --test: D(truth) and the 1- and 2-sigma
    quantiles of D* from its wild cluster bootstrap at the held fit."""
    path = synth(args, tmp, s, FRAME_SHARE if args.frame_share else 0.0)
    extra = ["--errors", args.errors, "--start", "local", "--boot", str(args.boot)]
    extra += init_args(TRUTH)
    for p in params:
        extra += ["--test", "%s=%r" % (p, TRUTH[p])]
    f = fit(args, path, extra)
    os.remove(path)
    return f if f is not None and "tests" in f else None


def main_wild(args):
    params = args.param.split(",")
    covered = {p: {1: 0, 2: 0} for p in params}
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(args.first_seed, args.first_seed + args.seeds):
            f = wild_seed(args, tmp, s, params)
            n += 1
            if f is None:   # no usable fit, no test: a miss at both levels
                print(json.dumps({"seed": s, "tests": None}), flush=True)
                continue
            rec = {"seed": s, "valley": f["params"]["gamma_dot_offset"] <= -0.0999,
                   "tests": f["tests"]}
            for p in params:
                t = f["tests"][p]
                covered[p][1] += t["D"] <= t["q_1sigma"]
                covered[p][2] += t["D"] <= t["q_2sigma"]
            print(json.dumps(rec), flush=True)
    for p in params:
        print("%s: fit_xpcs --test (wild bootstrap, %s errors, noise %g%s) covers %d / %d at "
              "1 sigma, %d / %d at 2 sigma" % (p, args.errors, args.noise,
                                               ", frame-shared" if args.frame_share else "",
                                               covered[p][1], n, covered[p][2], n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--param", default="gamma_dot_0",
                    help="a physical parameter (with --resampler wild: a comma-separated list)")
    ap.add_argument("--resampler", choices=["model", "wild"], default="model",
                    help="model: replicates from xpcs_synth at the held fit (idealised); "
                    "wild: fit_xpcs --test, the wild cluster bootstrap it ships")
    ap.add_argument("--errors", choices=["robust", "default"], default="robust",
                    help="with --resampler wild: frame clusters (robust) or single rows")
    ap.add_argument("--frame-share", type=int, choices=[0, 1], default=1,
                    help="with --resampler wild: 1, the corrprofile scenario's frame-shared "
                    "noise; 0, independent")
    ap.add_argument("--at", choices=["held", "truth"], default="held",
                    help="the model resampler's parameters: the held fit's (a test "
                    "inversion) or the truth's (an oracle: D(truth) and the D* are then "
                    "exchangeable, so it checks the harness and covers 68 / 95 %%)")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--boot", type=int, default=40, help="replicates per seed")
    # the corrprofile scenario's file (scripts/coverage_xpcs.py's defaults)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--angles", type=int, default=6)
    ap.add_argument("--dt", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.resampler == "wild":
        return main_wild(args)
    if args.param not in TRUTH:
        raise SystemExit("inversion_xpcs.py: --param: unknown parameter %r" % args.param)
    levels = {1: math.erf(1 / math.sqrt(2)), 2: math.erf(2 / math.sqrt(2))}
    covered = {1: 0, 2: 0}
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        held_cfg = os.path.join(tmp, "held.yaml")
        with open(held_cfg, "w") as f:
            f.write("initial_parameters:\n  fixed_parameters:\n    %s: %r\n"
                    % (args.param, TRUTH[args.param]))
        for s in range(args.first_seed, args.first_seed + args.seeds):
            path = synth(args, tmp, s, FRAME_SHARE)
            d, f, h = statistic(args, path, TRUTH, held_cfg)
            os.remove(path)
            at = dict(TRUTH) if args.at == "truth" else {k: h["params"][k] for k in TRUTH}
            dstar = []
            for b in range(args.boot):
                rep = synth(args, tmp, 1000000 + 1000 * s + b, FRAME_SHARE, params=at)
                dstar.append(statistic(args, rep, at, held_cfg)[0])
                os.remove(rep)
            dstar.sort()
            n += 1
            rec = {"seed": s, "valley": f["params"]["gamma_dot_offset"] <= -0.0999, "D": d,
                   "Dstar": dstar}
            for k, p in levels.items():
                q = quantile(dstar, p)
                rec["q%d" % k] = q
                covered[k] += d <= q
            print(json.dumps(rec), flush=True)
    print("%s: test inversion at the truth covers %d / %d at 1 sigma, %d / %d at 2 sigma"
          % (args.param, covered[1], n, covered[2], n))


if __name__ == "__main__":
    main()

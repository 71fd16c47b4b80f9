#!/usr/bin/env python3
"""Coverage of fit_xpcs's error bars over many synthetic seeds.

For each seed: xpcs_synth writes a file with known truth, fit_xpcs fits it
(--json, started at the truth so that only the error bars are tested, not the
search for the minimum) and the deviations (value - truth) / sigma are
counted.  A scenario is:

  indep    independent noise, default errors
  corr     half of the noise variance shared by frames (--frame-share 0.5),
           --errors robust (and, for comparison, default errors)
  profile  independent noise, profile-likelihood intervals of the shear
           parameters (--profile gamma_dot_0,beta,gamma_dot_offset), the
           other parameters with their default errors
  corrprofile  frame-correlated noise as corr, --errors robust and the
           profile intervals of every physical parameter (CORR_PROFILED,
           as fit_xpcs --profile physical; --profiled NAMES for another
           set) with the robust threshold K^2 V_rob / V_mod taken at each
           end's held fit (docs/uncertainties.md), the contrasts and
           offsets with robust error bars
  badstart not error bars but the global start (fit_xpcs --start global;
           the default auto runs it when --init is given): from the two bad
           starts of issue 14 (BAD_STARTS), a seed lands when the reduced
           chi2 is below 1.1 and every physical parameter is within 4 sigma
           of the truth (strict count: Wald bars only); the second count
           takes a parameter flagged undetermined (no Wald sigma exists) by
           its 4-sigma profile interval (the fits run with --profile
           undetermined --profile-level 4); the third (the one --check uses)
           takes every parameter by the bar docs/uncertainties.md recommends
           for it: also the shear parameters by their 4-sigma profile
           intervals.  With --angles 4 (90 degrees apart: phi0 -> -phi0 is a
           symmetry) the phi0 sign must be reported as not determined: the
           ambiguity reported, or phi0 flagged undetermined (the fit ends
           near phi0 = 0 or in a flat valley of the shear parameters), or
           phi0's 2-sigma bar holding -phi0.  --check: >= 95 % land (third
           count), every 4-angle seed one of those.

The error-bar scenarios fit with --start local (from the truth), so that
they test the error bars alone.

--noise S is the noise's total standard deviation per entry (xpcs_synth
--noise; default 0.01, the benchmark's).  At the same S, frame-shared noise
carries far less information than independent noise (the robust variances
are c = 10-30 times the model's here), so "corr" at 0.01 is as hard as
"indep" at about 0.045, and "corr" at 0.0025 about as easy as "indep" at
0.01 (docs/uncertainties.md, "Coverage and information").

Output: one line per parameter group with the 1-sigma and 2-sigma coverage
(%), and PASS / FAIL against the bands of issue 14 (1 sigma in [60, 76] %,
2 sigma >= 90 %; profile: the --profile-level sigma interval only, checked
against the 1-sigma band when the level is 1 and against the 2-sigma
minimum when it is 2; in the profile scenarios --pooled pools the profile
lines only).  A profiled parameter's linearised error bar is printed too, as
'NAME (Wald)', for comparison (not checked).  The fits that end in the shear
valley (gamma_dot_offset at its bound -0.1) are counted on their own line
(and kept).  A parameter flagged undetermined (no finite error bar) counts
as a miss.  Fits that stop at a limit or STALLED (usable, not
stationary) are counted on their own lines and kept; other errors (< 0) are
left out and fail --check (not with --pooled, which checks the pooled line
only); a command error (exit 2, no result) always fails --check.  Exit 1
when a band is missed (--check), 0 otherwise.

  scripts/coverage_xpcs.py --build build --scenario indep --seeds 100
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

TRUTH = {"D0": 2e4, "alpha": -0.2, "D_offset": 100.0, "gamma_dot_0": 1e-3,
         "beta": 0.2, "gamma_dot_offset": 1e-4, "phi0": 3.0}
SHEAR = ["gamma_dot_0", "beta", "gamma_dot_offset"]
# the share of the noise variance the frames carry in the corr scenarios
FRAME_SHARE = 0.5
# profiled under frame-shared noise with --errors robust (docs/uncertainties.md)
CORR_PROFILED = list(TRUTH)
BAD_STARTS = {"a": {"D0": 1000, "alpha": 0.5, "gamma_dot_0": 0.02, "beta": -0.5, "phi0": -6},
              "b": {"D0": 5e4, "gamma_dot_0": 5e-3}}


def init_args(values):
    """fit_xpcs options that start the fit at these parameter values."""
    return [a for k, v in values.items() for a in ("--init", "%s=%r" % (k, v))]


def synth(args, tmp, seed, frame_share=0.0, angles=None, params=None):
    """The seed's file in tmp; params: physical parameters other than TRUTH."""
    path = os.path.join(tmp, "cov_%d.h5" % seed)
    cmd = [os.path.join(args.build, "examples", "xpcs_synth"), path,
           "--frames", str(args.frames), "--angles", str(angles or args.angles),
           "--dt", str(args.dt), "--seed", str(seed), "--float64"]
    if frame_share > 0:
        cmd += ["--frame-share", str(frame_share)]
    cmd += ["--noise", repr(args.noise)]
    for k, v in (params or {}).items():
        cmd += ["--" + k, repr(v)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def fit(args, path, extra):
    cmd = [os.path.join(args.build, "examples", "fit_xpcs"), path, "--dt", str(args.dt),
           "--gap", "2e6", "--json", "--threads", str(args.threads), "--max-iter", "2000"] + extra
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if out.returncode not in (0, 1):
        return None
    d = json.loads(out.stdout)
    # fit_xpcs's warning that a profile found a lower cost than the fit
    # (its interval is then not valid) is on stderr only
    d["profile_lower_cost"] = b"found a lower cost than the fit" in out.stderr
    return d


def run_seed(args, tmp, seed, frame_share, errors, profile):
    path = synth(args, tmp, seed, frame_share)
    extra = ["--errors", errors, "--start", "local"] + init_args(TRUTH)
    if profile:
        extra += ["--profile", ",".join(args.profiled)]
        if args.profile_level != 1.0:
            extra += ["--profile-level", str(args.profile_level)]
        if args.boot:
            extra += ["--boot", str(args.boot)]
    d = fit(args, path, extra)
    os.remove(path)
    return d


def landed(d):
    """Strict (Wald only): every physical parameter within 4 sigma of the
    truth, reduced chi2 < 1.1; an undetermined parameter (no finite sigma)
    is a miss."""
    return not why_missed(d, "strict")


def landed_profile(d):
    """As landed(), except that a parameter flagged undetermined (no Wald
    sigma exists) counts when the truth lies inside its 4-sigma profile
    interval (fit_xpcs --profile undetermined --profile-level 4; an open end
    is the bound, so it reaches that bound)."""
    return not why_missed(d, "profile")


def landed_shear(d):
    """As landed_profile(), and the shear parameters by their 4-sigma profile
    intervals whenever they have one (the error bars docs/uncertainties.md
    recommends for them: their Wald bars have heavy tails)."""
    return not why_missed(d, "shear")


def mirror_covered(d):
    """phi0's 2-sigma bar holds its mirror -phi0: the reported error bar
    already says that the sign is not determined (the mirror check reports
    an ambiguity only between values more than 2 sigma apart)."""
    v, sig = d["params"].get("phi0"), d.get("errors", {}).get("phi0")
    return v is not None and sig is not None and math.isfinite(sig) and abs(2 * v) <= 2 * sig


def why_missed(d, rule):
    """[] when the fit landed under rule (strict, profile, shear), else the
    reasons (one short string each)."""
    if d is None:
        return ["command error"]
    if d["status_code"] < 0 and d["status"] != "STALLED":
        return ["status %s" % d["status"]]
    why = [] if d["reduced_chi2"] < 1.1 else ["chi2/dof %.4f" % d["reduced_chi2"]]
    if rule != "strict" and d.get("profile_lower_cost"):
        why.append("a profile found a lower cost than the fit (its interval is not valid)")
    dev = d["truth"]["deviation_sigmas"]["params"]
    for name, v in dev.items():
        flag = d.get("flags", {}).get(name, "")
        iv = d.get("intervals", {}).get(name)
        inside = iv is not None and iv[0] <= TRUTH[name] <= iv[1]
        if rule == "shear" and name in SHEAR and iv is not None:
            if inside:
                continue
        elif v is not None and abs(v) <= 4.0:
            continue
        elif rule != "strict" and v is None and flag.startswith("undetermined") and inside:
            continue
        why.append("%s=%.4g (%s%s)" % (
            name, d["params"][name], "%+.1f sigma" % v if v is not None else flag or "no sigma",
            ", profile [%.4g, %.4g]" % tuple(iv) if iv else ""))
    return why


def truth_fit(args, path):
    """The fit started at the truth (--start local): where the estimator ends."""
    return fit(args, path, ["--start", "local"] + PROFILE_UNDET + init_args(TRUTH))


# the bad-start fits profile what they leave undetermined, at 4 sigma; a
# seed that misses then is refitted with the shear parameters profiled too
PROFILE_UNDET = ["--profile", "undetermined", "--profile-level", "4"]
PROFILE_SHEAR = ["--profile", "undetermined," + ",".join(SHEAR), "--profile-level", "4"]


def badstart(args, tmp):
    """The bad-start counts; returns (lines, ok).  Three counts per start:
    the strict one (landed(): Wald only), the profile one (landed_profile():
    undetermined parameters by their profile intervals), and the one --check
    uses: every parameter by the bar docs/uncertainties.md recommends for it,
    i.e. also the shear parameters by their profile intervals (landed_shear();
    only the seeds the profile count misses are refitted for it, with the
    shear parameters profiled too).  A seed that misses from a bad start is fitted again
    from the truth: when that fit misses too (the estimator's miss, e.g. the
    shear valley beta -> 0, not the start's), the seed is counted apart, and
    the landing is also given without such seeds."""
    rules = {"strict": landed, "profile": landed_profile}
    land = {(k, r): 0 for k in BAD_STARTS for r in rules}
    miss = {(k, r): [] for k in BAD_STARTS for r in rules}
    est_miss = {r: set() for r in rules}
    shear_miss = {k: [] for k in BAD_STARTS}   # seeds the profile rule missed, refitted
    amb, undet, covered, amb_miss = 0, 0, 0, []
    for s in range(args.first_seed, args.first_seed + args.seeds):
        path = synth(args, tmp, s)
        missed = set()
        for k, init in BAD_STARTS.items():
            base = ["--start", "global"] + init_args(init)
            d = fit(args, path, base + PROFILE_UNDET)
            for r, rule in rules.items():
                if rule(d):
                    land[k, r] += 1
                    continue
                missed.add(r)
                miss[k, r].append((s, None if d is None else d["status"],
                                   None if d is None else round(d["reduced_chi2"], 4),
                                   "; ".join(why_missed(d, r))))
            if not landed_profile(d):   # the same fit, the shear parameters profiled too
                d = fit(args, path, base + PROFILE_SHEAR)
                shear_miss[k].append((s, "; ".join(why_missed(d, "shear"))))
        if missed:
            dt = truth_fit(args, path)
            for r in missed:
                if not rules[r](dt):
                    est_miss[r].add(s)
        os.remove(path)
        path = synth(args, tmp, s, angles=4)
        d = fit(args, path, ["--max-iter", "200", "--start", "global"])
        os.remove(path)
        print("seed %d: landed (strict/profile) a %s/%s, b %s/%s, from the truth %s/%s, "
              "4-angle start %s, phi0 flag %s" % (
                  s, *[s not in [m[0] for m in miss[k, r]] for k in BAD_STARTS for r in rules],
                  *[s not in est_miss[r] for r in rules],
                  None if d is None else d.get("start", {}).get("ambiguous"),
                  None if d is None else d.get("flags", {}).get("phi0")),
              file=sys.stderr, flush=True)
        if d is not None and d.get("start", {}).get("ambiguous"):
            amb += 1
        elif d is not None and d.get("flags", {}).get("phi0") == "undetermined":
            undet += 1      # phi0 near 0 or in a flat valley: the flags say so
        elif d is not None and mirror_covered(d):
            covered += 1    # the bar itself spans both signs: nothing to choose between
        else:
            amb_miss.append(s)
    n = args.seeds
    lines = []
    for r, what in (("strict", "strict (Wald: every parameter a finite sigma, within 4)"),
                    ("profile", "with profiles (an undetermined parameter: the truth inside "
                     "its 4-sigma profile interval)")):
        lines.append("landed, %s:" % what)
        for k in BAD_STARTS:
            lines.append("  start %s: %d / %d seeds landed (%.1f %%)" % (
                k, land[k, r], n, 100.0 * land[k, r] / n))
            lines += ["    missed seed %d: %s, chi2/dof %s: %s" % m for m in miss[k, r]]
        em = est_miss[r]
        lines.append("  the fit from the truth misses too (the estimator's miss) for seeds %s"
                     % sorted(em) if em else "  every missed seed lands from the truth")
        ne = n - len(em)
        lines += ["  start %s without those: %d / %d (%.1f %%)" % (
            k, land[k, r], ne, 100.0 * land[k, r] / ne if ne else 0.0) for k in BAD_STARTS]
    lines.append("landed, with profiles for the undetermined and the shear parameters (their "
                 "recommended bars; only the seeds the previous count missed are refitted):")
    for k in BAD_STARTS:
        ok_k = n - sum(1 for m in shear_miss[k] if m[1])
        lines.append("  start %s: %d / %d seeds landed (%.1f %%)" % (k, ok_k, n, 100.0 * ok_k / n))
        lines += ["    seed %d refitted: %s" % (m[0], m[1] or "lands") for m in shear_miss[k]]
    lines.append("4 angles 90 degrees apart: phi0 ambiguity reported for %d / %d seeds, phi0 "
                 "flagged undetermined instead for %d, its 2-sigma bar holding the mirror -phi0 "
                 "for %d%s" % (amb, n, undet, covered,
                               "; none of these for seeds %s" % amb_miss if amb_miss else ""))
    ok = all(n - sum(1 for m in shear_miss[k] if m[1]) >= 0.95 * n for k in BAD_STARTS) \
        and not amb_miss
    return lines, ok


def count(cov, key, dev):
    """cov[key] = [n, within 1 sigma, within 2 sigma]"""
    c = cov.setdefault(key, [0, 0, 0])
    c[0] += 1
    if dev is not None and math.isfinite(dev):
        c[1] += abs(dev) <= 1.0
        c[2] += abs(dev) <= 2.0


VALLEY = "in the shear valley (kept)"
SPECIAL = ("command errors", "failed fits", "stalled (kept)", "not converged (kept)",
           "no profile (fit not converged)", VALLEY)


def in_valley(d):
    """The fit ended in the shear valley (docs/uncertainties.md): gamma_dot_offset
    at its lower bound -0.1, where G(t) -> a + c ln t as beta -> 0."""
    return d["params"]["gamma_dot_offset"] <= -0.0999


def collect(d, cov, profile, profiled=SHEAR):
    """Counts one fit.  Exit 2 (no JSON): a command error, always a --check
    failure.  STALLED (usable, x not stationary) and limit stops are kept in
    the percentages and counted on their own lines; other errors are left out."""
    if d is None:
        cov.setdefault("command errors", [0, 0, 0])[0] += 1
        return
    if d["status_code"] < 0 and d["status"] != "STALLED":
        cov.setdefault("failed fits", [0, 0, 0])[0] += 1
        return
    if d["status"] == "STALLED":
        cov.setdefault("stalled (kept)", [0, 0, 0])[0] += 1
    elif d["status_code"] == 0:
        cov.setdefault("not converged (kept)", [0, 0, 0])[0] += 1
    if in_valley(d):
        cov.setdefault(VALLEY, [0, 0, 0])[0] += 1
    dev = d["truth"]["deviation_sigmas"]
    for name, v in dev["params"].items():
        # a profiled parameter's linearised error bar: for comparison only
        count(cov, name + (" (Wald)" if profile and name in profiled else ""), v)
    for v in dev.get("contrast", []):
        count(cov, "contrast (all angles)", v)
    for v in dev.get("offset", []):
        count(cov, "offset (all angles)", v)
    if profile:
        if "intervals" not in d:    # fit_xpcs profiles usable fits only
            cov.setdefault("no profile (fit not converged)", [0, 0, 0])[0] += 1
            for name in profiled:   # counted as misses
                cov.setdefault(name + " (profile)", [0, 0, None])[0] += 1
            return
        for name in profiled:
            lo, hi = d["intervals"][name]
            c = cov.setdefault(name + " (profile)", [0, 0, 0])
            c[0] += 1
            c[1] += lo <= TRUTH[name] <= hi
            c[2] = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--scenario", choices=["indep", "corr", "profile", "corrprofile", "badstart"],
                    default="indep")
    ap.add_argument("--profile-level", type=float, default=1.0,
                    help="profile scenario: the interval's level in sigmas (1 or 2)")
    ap.add_argument("--errors", choices=["default", "robust"], default=None)
    ap.add_argument("--boot", type=int, default=0,
                    help="profile scenarios: fit_xpcs --boot B, the ends' thresholds from a "
                    "bootstrap test inversion (B >= 10; slow: tens of solves per end)")
    ap.add_argument("--profiled", default=None,
                    help="profile scenarios: the parameters profiled (comma-separated; default "
                    "the shear parameters for profile, %s for corrprofile)" % ",".join(CORR_PROFILED))
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--angles", type=int, default=6)
    ap.add_argument("--dt", type=float, default=2e-3)
    ap.add_argument("--noise", type=float, default=0.01,
                    help="xpcs_synth --noise: the noise's total standard deviation per entry")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dump", default=None,
                    help="append each seed's fit_xpcs JSON (one line, with the seed) to this file")
    ap.add_argument("--check", action="store_true", help="exit 1 when a band is missed")
    ap.add_argument("--lo", type=float, default=60.0, help="1-sigma band low end (%%)")
    ap.add_argument("--hi", type=float, default=76.0, help="1-sigma band high end (%%)")
    ap.add_argument("--two", type=float, default=90.0, help="2-sigma minimum (%%)")
    ap.add_argument("--pooled", action="store_true",
                    help="check only the pooled count over all parameters (for few seeds)")
    args = ap.parse_args()
    if args.scenario == "badstart":
        with tempfile.TemporaryDirectory() as tmp:
            lines, ok = badstart(args, tmp)
        print("scenario badstart, %d seeds (N = %d frames, %d angles, dt = %g, noise %g)"
              % (args.seeds, args.frames, args.angles, args.dt, args.noise))
        print("\n".join(lines))
        return 1 if (args.check and not ok) else 0
    share = FRAME_SHARE if args.scenario.startswith("corr") else 0.0
    errors = args.errors or ("robust" if args.scenario.startswith("corr") else "default")
    profile = args.scenario.endswith("profile")
    args.profiled = (args.profiled.split(",") if args.profiled else
                     CORR_PROFILED if args.scenario == "corrprofile" else SHEAR)
    cov = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(args.first_seed, args.first_seed + args.seeds):
            d = run_seed(args, tmp, s, share, errors, profile)
            if args.dump:
                with open(args.dump, "a") as f:
                    f.write(json.dumps({"seed": s, "fit": d}) + "\n")
            collect(d, cov, profile, args.profiled)
    print("scenario %s, errors %s, %d seeds (N = %d frames, %d angles, dt = %g, noise %g)"
          % (args.scenario, errors, args.seeds, args.frames, args.angles, args.dt, args.noise))
    if profile:
        print("profile intervals of %g sigma (delta chi2 = %g): column '1 sigma' = truth inside"
              % (args.profile_level, args.profile_level ** 2))
    print("%-28s %6s %9s %9s  %s" % ("parameter", "n", "1 sigma", "2 sigma", "band"))
    ok = True
    if args.pooled:
        groups = [v for k, v in cov.items() if k not in SPECIAL and not k.endswith("(Wald)")
                  and (not profile or k.endswith("(profile)"))]
        n = sum(v[0] for v in groups)
        two = None if profile else sum(v[2] for v in groups)
        cov["pooled"] = [n, sum(v[1] for v in groups), two]
    for key, (n, c1, c2) in cov.items():
        if key in SPECIAL:
            print("%-30s %6d" % (key, n))
            ok = ok and key != "command errors" and (key != "failed fits" or args.pooled)
            continue
        p1 = 100.0 * c1 / n
        p2 = None if c2 is None else 100.0 * c2 / n
        if key.endswith("(profile)") and args.profile_level == 2.0:   # the 2-sigma interval
            good = p1 >= args.two
        else:
            good = args.lo <= p1 <= args.hi and (p2 is None or p2 >= args.two)
        if (not args.pooled or key == "pooled") and not key.endswith("(Wald)"):
            ok = ok and good
        print("%-28s %6d %8.1f%% %9s  %s" % (key, n, p1, "-" if p2 is None else "%.1f%%" % p2,
                                             "PASS" if good else "FAIL"))
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())

"""nlsqc.fit_xpcs against the fit_xpcs command on a synthetic file."""
import json
import os
import subprocess
import threading
import time

import pytest

import nlsqc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _exe(env, name):
    path = os.environ.get(env) or os.path.join(REPO, "build", "examples", name)
    assert os.path.exists(path), "%s not found (build the project, or set %s)" % (path, env)
    return path


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("xpcs") / "synth.h5")
    subprocess.run([_exe("NLSQC_XPCS_SYNTH", "xpcs_synth"), path, "--frames", "200", "--angles", "4",
                    "--seed", "3"], check=True, capture_output=True)
    return path


def test_same_keys_and_numbers_as_the_command(h5):
    cli = subprocess.run([_exe("NLSQC_FIT_XPCS", "fit_xpcs"), h5, "--dt", "1e-3", "--gap", "2e6",
                          "--threads", "1", "--json", "--init", "D0=12000"],
                         capture_output=True, text=True)
    assert cli.returncode in (0, 1), cli.stderr      # 1: stopped without converging
    ref = json.loads(cli.stdout)
    got = nlsqc.fit_xpcs(h5, dt=1e-3, gap=2e6, threads=1, init={"D0": 12000})
    assert sorted(got) == sorted(ref)
    for d in (got, ref):      # the start stage's wall time
        d["start"].pop("seconds", None)
    for key in ref:
        if key in ("seconds", "phases"):      # wall time
            continue
        assert got[key] == ref[key], key
    assert got["n_rows"] > 0 and len(got) > 20


def test_errors_carry_the_commands_message(h5):
    with pytest.raises(nlsqc.FitXpcsError, match="cannot open") as e:
        nlsqc.fit_xpcs(h5 + ".missing", dt=1e-3, gap=2e6)
    assert e.value.exit_code == 2
    with pytest.raises(nlsqc.FitXpcsError, match="try --help"):
        nlsqc.fit_xpcs(h5, dt=1e-3, gap=2e6, no_such_option=3)
    with pytest.raises(TypeError):
        nlsqc.fit_xpcs(h5, dt=1e-3, gap=2e6, json=True)


def test_gil_is_released_during_the_fit(h5):
    box = {}
    t = threading.Thread(target=lambda: box.update(r=nlsqc.fit_xpcs(h5, dt=1e-3, gap=2e6,
                                                                     threads=1, max_iter=200)))
    spins = 0
    t0 = time.perf_counter()
    t.start()
    while t.is_alive():
        spins += 1
    elapsed = time.perf_counter() - t0
    assert "r" in box
    # a held GIL would stop this loop for the whole fit
    print("fit %.3f s, %d loop turns meanwhile" % (elapsed, spins))
    assert spins > 1000


def test_calls_in_several_threads_at_once_give_the_sequential_results(h5):
    # no lock around the C call: each call has its own streams and state
    cases = [dict(dt=1e-3, gap=2e6, threads=1, max_iter=20),
             dict(dt=1e-3, mode="static", threads=1, max_iter=20),
             dict(dt=1e-3, gap=2e6, threads=1, max_iter=20, frames="0:120")]

    def key(r):
        r.get("start", {}).pop("seconds", None)     # the start stage's wall time
        return json.dumps({k: v for k, v in r.items() if k not in ("seconds", "phases")},
                          sort_keys=True)
    want = [key(nlsqc.fit_xpcs(h5, **c)) for c in cases]
    got = {}

    def work(i):
        got[i] = [key(nlsqc.fit_xpcs(h5, **cases[(i + k) % 3])) for k in range(3)]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert got[i] == [want[(i + k) % 3] for k in range(3)]

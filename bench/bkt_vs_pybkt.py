"""Our BKT (analytics.knowledge) against pyBKT, the reference implementation, on the same logs.

Synthetic attempt logs are drawn from known parameters (several topics, students with
sequences of different lengths), then both fit them by EM and predict P(known) before every
attempt. The check passes when, per topic:

- every fitted parameter (P(L0), P(T), P(G), P(S)) is within PARAM_TOL of pyBKT's;
- predicted mastery (P(known) before each attempt, each with its own fit) differs by at most
  MASTERY_MEAN_TOL on average and MASTERY_MAX_TOL at worst;
- our filter given pyBKT's parameters reproduces pyBKT's predictions to 1e-6 (same model).

pyBKT runs in its own virtualenv (``PYBKT_PYTHON``, default ``/tmp/pybkt-venv/bin/python``):
pyBKT 1.4.3 imports scikit-learn metrics in a way that breaks from scikit-learn 1.6 on, so it
needs ``scikit-learn<1.6`` (and numpy/pandas of that era), which the app's venv must not
carry. Set it up once with::

    python3 -m venv /tmp/pybkt-venv
    /tmp/pybkt-venv/bin/pip install pyBKT==1.4.3 "scikit-learn<1.6" "numpy<2.3" "pandas<2.3"

Run: ``python bench/bkt_vs_pybkt.py [--students 400] [--seed 1]``; exits 1 outside tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.knowledge import fit_bkt, pad, state_predictions  # noqa: E402
from tutor.mastery import BKT  # noqa: E402

PARAM_TOL = 0.05
MASTERY_MEAN_TOL = 0.02
MASTERY_MAX_TOL = 0.10
TOPICS = {  # true parameters the logs are drawn from
    "linear equations": BKT(p_init=0.25, p_learn=0.20, p_guess=0.15, p_slip=0.10),
    "fractions": BKT(p_init=0.40, p_learn=0.10, p_guess=0.25, p_slip=0.05),
    "percentages": BKT(p_init=0.10, p_learn=0.30, p_guess=0.10, p_slip=0.15),
}

PYBKT_SCRIPT = r"""
import json, sys
import numpy as np, pandas as pd
from pyBKT.models import Model
df = pd.read_csv(sys.argv[1])
model = Model(seed=7, num_fits=5)
model.fit(data=df)
params = model.params()
out = {"params": {}, "states": {}}
for skill in df["skill_name"].unique():
    p = params.loc[skill]
    out["params"][skill] = {
        "p_init": float(p.loc[("prior", "default"), "value"]),
        "p_learn": float(p.loc[("learns", "default"), "value"]),
        "p_guess": float(p.loc[("guesses", "default"), "value"]),
        "p_slip": float(p.loc[("slips", "default"), "value"]),
    }
pred = model.predict(data=df)
out["order"] = pred["order_id"].astype(int).tolist()
out["state"] = pred["state_predictions"].astype(float).tolist()
print(json.dumps(out))
"""


def simulate(students: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for topic, p in TOPICS.items():
        for student in range(students):
            known = rng.random() < p.p_init
            for _ in range(int(rng.integers(3, 16))):
                right = rng.random() < ((1 - p.p_slip) if known else p.p_guess)
                rows.append((topic, student, int(right)))
                known = known or rng.random() < p.p_learn
    df = pd.DataFrame(rows, columns=["skill_name", "user_id", "correct"])
    df["order_id"] = np.arange(1, len(df) + 1)
    return df


def run_pybkt(df: pd.DataFrame) -> tuple[dict, float]:
    python = os.environ.get("PYBKT_PYTHON", "/tmp/pybkt-venv/bin/python")
    if not Path(python).exists():
        sys.exit(f"pyBKT's Python not found at {python}; see this file's docstring to set it up")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attempts.csv"
        df.to_csv(path, index=False)
        began = time.perf_counter()
        done = subprocess.run([python, "-c", PYBKT_SCRIPT, str(path)], capture_output=True, text=True, check=False)
        took = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"pyBKT failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--students", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    df = simulate(args.students, np.random.default_rng(args.seed))
    reference, pybkt_seconds = run_pybkt(df)
    states = pd.Series(reference["state"], index=reference["order"])
    ok = True
    ours_seconds = 0.0
    print(f"{len(df)} attempts, {args.students} students x {len(TOPICS)} topics (seed {args.seed})")
    print(f"tolerances: parameters ±{PARAM_TOL}, mastery mean ±{MASTERY_MEAN_TOL}, max ±{MASTERY_MAX_TOL}\n")
    print(f"{'topic':<18}{'param':<9}{'true':>7}{'ours':>8}{'pyBKT':>8}{'diff':>8}")
    for topic, group in df.groupby("skill_name", sort=False):
        obs, lengths = pad(group.rename(columns={"user_id": "student_id"}))
        began = time.perf_counter()
        fit = fit_bkt(obs, lengths)
        ours_seconds += time.perf_counter() - began
        theirs = BKT(**reference["params"][topic])
        for name in ("p_init", "p_learn", "p_guess", "p_slip"):
            a, b = getattr(fit.params, name), getattr(theirs, name)
            ok &= abs(a - b) <= PARAM_TOL
            flag = "" if abs(a - b) <= PARAM_TOL else "  <-- outside tolerance"
            print(f"{topic:<18}{name:<9}{getattr(TOPICS[topic], name):>7.3f}{a:>8.3f}{b:>8.3f}{a - b:>+8.3f}{flag}")
        mask = np.arange(obs.shape[1])[None, :] < lengths[:, None]
        pybkt_states = states.loc[group["order_id"]].to_numpy()
        ours = state_predictions(obs, lengths, fit.params)[mask]
        same_model = state_predictions(obs, lengths, theirs)[mask]
        gap = np.abs(ours - pybkt_states)
        filter_gap = float(np.abs(same_model - pybkt_states).max())
        ok &= gap.mean() <= MASTERY_MEAN_TOL and gap.max() <= MASTERY_MAX_TOL and filter_gap <= 1e-6
        print(f"{topic:<18}mastery  mean |diff| {gap.mean():.4f}, max {gap.max():.4f}; "
              f"same parameters: max {filter_gap:.1e}  ({fit.iterations} EM iterations)\n")  # fmt: skip
    print(f"fit time: ours {ours_seconds:.2f} s (one start), pyBKT {pybkt_seconds:.1f} s (5 starts, pure Python, "
          "process start included)")  # fmt: skip
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

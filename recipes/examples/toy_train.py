"""A tiny training script from "outside" the harness, for recipes/examples/toy_external.yaml (kind: external).

It imports nothing of bench: it fits a logistic regression (numpy, full-batch gradient descent) to two Gaussian
blobs and prints MLPerf-style `:::MLLOG` lines, as an MLPerf reference implementation does: init_start,
init_stop, run_start, one eval_accuracy per epoch (a fraction, with epoch_num), run_stop. `time_ms` is its own
clock; `bench external` stamps every line with the referee's clock and uses that.

    python recipes/examples/toy_train.py --epochs 8 --sleep 0.05 --seed 0
"""
import argparse
import json
import time

import numpy as np


def log(key, value=None, **metadata):
    rec = {"namespace": "", "time_ms": int(time.time() * 1000), "event_type": "POINT_IN_TIME", "key": key,
           "value": value, "metadata": metadata}
    print(":::MLLOG " + json.dumps(rec), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--sleep", type=float, default=0.05, help="extra seconds per epoch, to look like work")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.3)
    a = p.parse_args()
    log("init_start")
    rng = np.random.default_rng(a.seed)
    n = 2000
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 2)) + np.where(y[:, None] == 1, [1.5, 0.0], [-1.5, 0.0]) + [0.0, 3.0]
    x_test, y_test, x, y = x[:500], y[:500], x[500:], y[500:]
    w, b = np.array([0.1, -1.0]), 3.0  # a poor start, so accuracy climbs over the epochs
    log("init_stop")
    log("run_start")
    for epoch in range(1, a.epochs + 1):
        for _ in range(2):
            z = 1 / (1 + np.exp(-(x @ w + b)))
            w -= a.lr * x.T @ (z - y) / len(y)
            b -= a.lr * float(np.mean(z - y))
        time.sleep(a.sleep)
        acc = float(np.mean(((x_test @ w + b) > 0) == y_test))
        log("eval_accuracy", acc, epoch_num=epoch)
    log("run_stop", status="success")


if __name__ == "__main__":
    main()

"""A training cluster on this machine: `train --distribute multi-worker` processes on 127.0.0.1,
each told its place by TF_CONFIG as on separate machines. Shared by the distributed test and
bench/scale.py, so both start the cluster the way a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def train_cluster(train_args, outs, errs, timeout: float) -> list[int]:
    """Run one `train *train_args --distribute multi-worker --out outs[i]` worker per entry of
    ``outs`` (worker 0 is the chief), its stderr into ``errs[i]``; wait for all and return their
    exit codes. A worker still running at ``timeout`` seconds is killed (its code is then -9)."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(len(outs))]
    # This checkout's package, not whichever one the interpreter has installed.
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    workers = []
    deadline = time.monotonic() + timeout
    try:
        for index, (out, err_path) in enumerate(zip(outs, errs)):
            tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "PYTHONPATH": python_path}
            command = [sys.executable, "-m", "lstm_rare_event", *map(str, train_args),
                       "--distribute", "multi-worker", "--out", str(out)]
            with open(err_path, "w") as err:  # a file: a full pipe would block the worker
                workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err))
        for w in workers:
            w.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass  # the survivors are killed below and report -9
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    return [w.returncode for w in workers]

"""A serving process runs numpy's BLAS on one thread (athenaeum/server/__init__.py): concurrent
requests keep the cores busy, and OpenBLAS's extra threads would busy-wait beside them. Checked in
fresh interpreters, as the Lambda handler and `athenaeum serve` start, with threadpoolctl reading
the thread count of the OpenBLAS numpy actually loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import {module}
import numpy, threadpoolctl
numpy.ones((64, 64)) @ numpy.ones(64)
blas = [p for p in threadpoolctl.threadpool_info() if p["internal_api"] == "openblas"]
print(json.dumps([p["num_threads"] for p in blas]))
"""


def blas_threads(module: str, **env: str) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    threads: list[int] = json.loads(out.stdout)
    return threads


@pytest.mark.parametrize("module", ["athenaeum.server.lambda_handler", "athenaeum.server.local"])
def test_serving_processes_run_blas_on_one_thread(module: str) -> None:
    assert blas_threads(module) == [1]
    assert blas_threads(module, OPENBLAS_NUM_THREADS="2") == [2]  # the user's own setting wins

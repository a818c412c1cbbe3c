"""The server: one FastAPI app (`http.app`, its routes, middleware and the one search path)
run by `athenaeum serve` (`local`) and by the Lambda handler (`lambda_handler`); who may call
(`auth`); what chat answers with (`answers`: the retrieval model's answer, the generating
model's prompt and client, follow-ups); the index being served (`index`: its source and the
provider on the storage layer); the one settings class (`settings`) and the keys it names in
Secrets Manager (`secrets`).

Serve side: nothing here imports the build side. This package's own import is free of FastAPI,
so the Lambda authorizer can use `auth`, `settings` and `index.source` alone.
"""

import os

# One BLAS thread per serving process, set before numpy loads OpenBLAS (every entry point imports
# this package first): a query's dense scoring is one matrix-vector product of well under a
# millisecond, and concurrent requests already keep the cores busy, while OpenBLAS's extra
# threads busy-wait after each product and take the CPU the other requests need. On 2 cores
# that doubled the CPU time of a query and cut /search at concurrency 8 by about a third
# (docs/benchmarks.md, "API throughput"). An OPENBLAS_NUM_THREADS set by the user wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

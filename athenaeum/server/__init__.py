"""The server: one FastAPI app (`app`) run by `athenaeum serve` (`local`) and by the Lambda
handler (`lambda_handler`), its routes (`routes`), authentication (`auth`, `security`), the
generating model's client (`llm`, `secrets`), middleware and settings.

Serve side: nothing here imports the build side. This package's own import is free of FastAPI,
so the Lambda authorizer can use `auth` and `settings` alone.
"""

"""Who may call the API: OAuth access tokens (`jwt`), static API keys (`keys`), the bearer header
(`bearer`), OAuth discovery (`discovery`) and the principal they all produce (`principal`), and
the ASGI middleware that applies them to every request (`middleware`).

All but the middleware are free of FastAPI and starlette: the Lambda TOKEN authorizer is deployed
with them alone (infra/staging.py lists them).
"""

"""The API function: its construct (infrastructure.py); its code is the serve half of the
`athenaeum` package (infra/staging.py)."""

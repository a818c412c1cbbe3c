"""Athenaeum: give an LLM a library."""

# The one place the version is written (pyproject.toml reads it from here). A constant, not
# importlib.metadata: the Lambda function runs this package from its code folder, uninstalled,
# and importing importlib.metadata would slow every cold start.
__version__ = "0.1.0"

__all__ = ["__version__"]

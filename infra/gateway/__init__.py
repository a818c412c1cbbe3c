"""The REST API in front of the functions (infrastructure.py)."""

"""The TOKEN authorizer: its Lambda code (handler.py) and its construct (infrastructure.py)."""

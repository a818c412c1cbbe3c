"""CloudWatch alarms on the API and its functions (infrastructure.py)."""

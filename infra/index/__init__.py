"""The index kept in S3: its bucket and copy (infrastructure.py), and deploy.sh's own upload
of bundles too large for that copy (upload.py)."""

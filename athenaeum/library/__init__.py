"""The library of a deployment: the source documents kept under an S3 prefix, and `push`, which
makes that prefix match a local folder.

Light on purpose (the standard library, and boto3 imported on first use): no build side, no CLI
stack, so the same rules can run wherever documents are handled.
"""

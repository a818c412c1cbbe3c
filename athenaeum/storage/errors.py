"""What an AWS service answered, read from a botocore error for messages and decisions."""

from __future__ import annotations

# The codes S3 answers for an object that is not there, and for a conditional write that lost.
MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
CONFLICT = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError (`NoSuchKey`, `PreconditionFailed`, ...);
    "" for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "")
    return ""


def describe_error(exc: BaseException) -> str:
    """A botocore error as `Code: Message`, for messages that say what S3 answered."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code, message = err.get("Code"), err.get("Message")
        if code or message:
            return f"{code}: {message}"
    # boto3's S3UploadFailedError wraps the ClientError: its text already names the code.
    return " ".join(str(exc).split()) or type(exc).__name__

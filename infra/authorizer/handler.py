"""API Gateway TOKEN authorizer: verifies the bearer credential, an API key made by
`athenaeum keys` or an OAuth JWT, with the app's own code.

Deployed beside the few modules of `athenaeum` it imports (infra/staging.py lists them; pyjwt,
cryptography and pydantic-settings come from the layer, boto3 from the runtime). It reads the
app's own settings (athenaeum.server.settings): the OAuth fields, and ATHENAEUM_API_KEYS_SECRET,
the Secrets Manager secret holding the key set, read again every ATHENAEUM_API_KEYS_REFRESH_S.
The validator and the key ring, and so their caches, live as long as the container.

- valid token or key: Allow for the whole stage (`.../stage/*/*`), so that a cached decision for
  one route holds for every other; context carries sub, scopes, client_id, iss and groups (a
  JSON list: the token's ATHENAEUM_ACCESS_CLAIM, or the key's groups), which the function's
  access policy reads (a key's sub is `api-key:<its name>`; the key itself is never logged).
- bad token or key, or a malformed event: `Unauthorized` (API Gateway answers 401 with the
  WWW-Authenticate challenge).
- valid credential without the required scopes: Deny (403).
- keys unavailable (JWKS down, no cached key; the key set secret unreadable), or a key id it
  does not hold when the JWKS was fetched too recently to fetch again: an error, which API
  Gateway answers with its AUTHORIZER_FAILURE response (503) and does not cache: fail closed,
  never Allow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from athenaeum.errors import (
    AuthenticationError,
    AuthUnavailableError,
    InsufficientScopeError,
    SigningKeyPendingError,
)
from athenaeum.server.auth.bearer import parse_bearer
from athenaeum.server.auth.groups import CONTEXT_KEY, context_groups
from athenaeum.server.auth.jwt import JWTValidator, jwt_validator
from athenaeum.server.auth.keyring import LiveKeyRing
from athenaeum.server.auth.keystores import live_keyring
from athenaeum.server.auth.principal import Principal
from athenaeum.server.settings import Settings

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

UNAUTHORIZED = "Unauthorized"
# Log markers the alarms' metric filter counts (infra/monitoring/infrastructure.py): a refused
# token is routine (and Lambda counts it as an error, since the 401 is an exception); these two
# are not.
KEYS_UNAVAILABLE = "AUTHORIZER_KEYS_UNAVAILABLE"
FAILURE = "AUTHORIZER_FAILURE"
_credentials: Credentials | None = None


class AuthorizerUnavailable(Exception):
    """The credential could not be checked (JWKS or key set unreachable); API Gateway answers
    503."""


@dataclass(frozen=True)
class Credentials:
    """What this authorizer accepts: OAuth JWTs, API keys from the stack's key set, or both."""

    jwt: JWTValidator | None
    keys: LiveKeyRing | None


def get_credentials() -> Credentials:
    global _credentials
    if _credentials is None:
        settings = Settings()
        credentials = Credentials(
            jwt=jwt_validator(settings),
            keys=live_keyring(
                keys_file=None,
                keys_secret=settings.api_keys_secret,
                refresh_s=settings.api_keys_refresh_s,
                required_scopes=settings.oauth_required_scopes,
            ),
        )
        if credentials.jwt is None and credentials.keys is None:
            raise RuntimeError(
                "the authorizer needs ATHENAEUM_API_KEYS_SECRET, or ATHENAEUM_OAUTH_ISSUER, "
                "ATHENAEUM_OAUTH_AUDIENCE and ATHENAEUM_OAUTH_JWKS_URL"
            )
        _credentials = credentials
    return _credentials


def reset() -> None:
    """Forget the validator, the key ring and their caches; for tests and configuration
    changes."""
    global _credentials
    _credentials = None


def verify(token: str) -> Principal:
    """The principal of a bearer credential. Keys never hold a dot and JWTs always do, so each
    goes to its own check: a JWT is never hashed and compared with the keys, nor a key sent to
    the JWKS."""
    credentials = get_credentials()
    if credentials.keys is not None and ("." not in token or credentials.jwt is None):
        return credentials.keys.current().authenticate(token)
    if credentials.jwt is None:
        raise AuthenticationError("the API key is not valid")
    return credentials.jwt.validate(token)


def stage_arn(method_arn: str) -> str:
    """`arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/*/*` from the invoked method's ARN."""
    prefix, sep, path = method_arn.partition("/")
    parts = path.split("/")
    if not sep or len(parts) < 2 or not parts[0] or not prefix.startswith("arn:"):
        raise ValueError("not an execute-api method ARN")
    return f"{prefix}/{parts[0]}/*/*"


def policy(
    principal_id: str, effect: str, resource: str, context: dict[str, str]
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if context:
        response["context"] = context
    return response


def principal_context(principal: Principal) -> dict[str, str]:
    # API Gateway accepts only string, number and boolean context values.
    context = {
        "sub": principal.subject,
        "scopes": " ".join(sorted(principal.scopes)),
        "iss": principal.issuer,
    }
    if principal.client_id:
        context["client_id"] = principal.client_id
    if principal.groups:
        # The function's access policy reads them here, and nowhere else (a JSON list: context
        # values are scalars, and group names may hold spaces).
        context[CONTEXT_KEY] = context_groups(principal.groups)
    return context


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        return _authorize(event)
    except AuthorizerUnavailable:
        raise
    except Exception as exc:
        if str(exc) == UNAUTHORIZED and type(exc) is Exception:
            raise
        # A bug: fail closed (API Gateway answers 503), and say so where the alarm looks.
        logger.exception("%s: unexpected error", FAILURE)
        raise


def _authorize(event: Any) -> dict[str, Any]:
    # Whatever the event holds, a malformed one is a refusal (401), never an error (503): the
    # checks below look at types before they look at values.
    if not isinstance(event, dict) or event.get("type") != "TOKEN":
        logger.error("not a TOKEN authorizer event")
        raise Exception(UNAUTHORIZED)
    method_arn = event.get("methodArn")
    try:
        if not isinstance(method_arn, str):
            raise ValueError("methodArn is not a string")
        resource = stage_arn(method_arn)
    except ValueError:
        logger.error("authorizer event without a usable methodArn")
        raise Exception(UNAUTHORIZED) from None
    header = event.get("authorizationToken")
    if header is not None and not isinstance(header, str):
        logger.info("unauthorized: the authorization token is not a string")
        raise Exception(UNAUTHORIZED)
    try:
        token = parse_bearer(header)
        principal = verify(token)
    except InsufficientScopeError as exc:
        # The token is genuine: a Deny (403), with the subject for the access log.
        logger.info("denied: %s", exc.message)
        return policy("insufficient-scope", "Deny", resource, {})
    except AuthenticationError as exc:
        logger.info("unauthorized: %s", exc.message)
        raise Exception(UNAUTHORIZED) from None
    except SigningKeyPendingError as exc:
        # A key id we do not hold, asked about again before the JWKS may be fetched again: a
        # 503 (the token may be good), but no outage.
        logger.info("keys pending: %s", exc.message)
        raise AuthorizerUnavailable(exc.message) from None
    except AuthUnavailableError as exc:
        logger.error("%s: cannot verify tokens: %s", KEYS_UNAVAILABLE, exc.message)
        raise AuthorizerUnavailable(exc.message) from None
    return policy(principal.subject, "Allow", resource, principal_context(principal))

"""`athenaeum keys create | list | revoke`: the API keys `athenaeum serve` and the AWS stack's
authorizer accept, kept as hashes in a local file or in the stack's Secrets Manager secret."""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from athenaeum.cli.console import console, err_console, fail

if TYPE_CHECKING:
    from athenaeum.server.auth.keyring import KeyRecord
    from athenaeum.server.auth.keystores import KeyStore

app = typer.Typer(
    name="keys",
    help="Create, list and revoke the API keys the server accepts (as Authorization: Bearer).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        help="The local key set that `athenaeum serve` reads. Default: ATHENAEUM_API_KEYS_FILE, "
        "else ~/.config/athenaeum/api-keys.json ($XDG_CONFIG_HOME/athenaeum when set).",
        show_default=False,
    ),
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help="The AWS stack's key set: the Secrets Manager secret (ARN or name) that "
        "./deploy.sh prints as ApiKeysSecretArn. Default: ATHENAEUM_API_KEYS_SECRET. Uses the "
        "usual AWS credentials and region.",
        show_default=False,
    ),
]
_DURATION = re.compile(r"(\d+)([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def _store(file: Path | None, secret: str | None) -> KeyStore:
    import os

    from athenaeum.server.auth.keystores import FileKeyStore, SecretKeyStore, default_keys_file

    if file is not None and secret is not None:
        fail("give --file or --secret, not both")
    secret = secret or (None if file is not None else os.environ.get("ATHENAEUM_API_KEYS_SECRET"))
    if secret:
        return SecretKeyStore(secret)
    configured = os.environ.get("ATHENAEUM_API_KEYS_FILE")
    return FileKeyStore(file or (Path(configured) if configured else default_keys_file()))


def _expiry(text: str | None, now: datetime) -> datetime | None:
    if text is None or text.lower() == "never":
        return None
    duration = _DURATION.fullmatch(text.strip().lower())
    if duration:
        amount, unit = int(duration.group(1)), duration.group(2)
        if amount == 0:
            fail("--expires must be in the future")
        return now + timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(
            f"--expires {text!r} is not a duration (such as 12h, 90d or 4w), a date "
            "(2027-06-30, midnight UTC) or an ISO 8601 time"
        )
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if moment <= now:
        fail(f"--expires {text} is in the past")
    return moment


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def create_command(
    name: Annotated[
        str,
        typer.Argument(
            help="A name for the key: who or what uses it (chatgpt, ci, alice-laptop). Logs "
            "and `keys list` show the name, never the key.",
            show_default=False,
        ),
    ],
    scopes: Annotated[
        str | None,
        typer.Option(
            "--scopes",
            help="Space-separated scopes the key carries (when the server requires scopes: "
            "ATHENAEUM_OAUTH_REQUIRED_SCOPES, or the stack's required_scopes).",
            show_default=False,
        ),
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="A group the key's holder belongs to, for the server's access policy "
            "(ATHENAEUM_ACCESS_POLICY grants collections to groups); repeat it for more. "
            "Without one, the key reads what every caller reads: the library's root and the "
            'collections the policy grants to "*".',
            show_default=False,
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When the key stops working: a duration (12h, 90d, 4w), a date (2027-06-30, "
            "midnight UTC) or an ISO 8601 time. Default: never.",
            show_default=False,
        ),
    ] = None,
    file: FileOption = None,
    secret: SecretOption = None,
) -> None:
    """Make a new API key and print it, once: only its sha256 is stored.

    The key goes to stdout alone (`KEY=$(athenaeum keys create ci)` captures it); everything
    else goes to stderr. Clients send it as `Authorization: Bearer <key>`.

    Locally, `athenaeum serve` reads the key set with no further setting and accepts the new
    key at once. On AWS (--secret), the authorizer accepts it within ATHENAEUM_API_KEYS_REFRESH_S
    (60 s by default).
    """
    from athenaeum.server.auth.groups import check_groups
    from athenaeum.server.auth.keyring import check_name, generate_key, new_record
    from athenaeum.server.auth.principal import check_scopes

    now = datetime.now(UTC).replace(microsecond=0)
    try:
        check_name(name)
        scope_list = check_scopes(scopes or "")
        group_list = check_groups(groups or [], "--group")
    except ValueError as exc:
        fail(str(exc))
    expiry = _expiry(expires, now)
    store = _store(file, secret)
    key = generate_key()
    record = new_record(name, key, scopes=scope_list, groups=group_list, expires=expiry, now=now)

    def add(records: list[KeyRecord]) -> list[KeyRecord]:
        if any(r.name == name and r.digest != record.digest for r in records):
            fail(f"a key named {name!r} exists in {store.origin}; revoke it or pick another name")
        return [r for r in records if r.name != name] + [record]

    store.update(add)
    print(key, flush=True)
    err_console.print(
        f"Created API key {name!r} (ending {record.hint}, expires {_when(expiry)}) in "
        f"{store.origin}.\nIt is shown only now: keep it in a password manager or your GPT's "
        "settings. Clients send it as Authorization: Bearer <key>.",
        soft_wrap=True,
        highlight=False,
    )


def list_command(file: FileOption = None, secret: SecretOption = None) -> None:
    """List the keys: name, last characters, scopes, groups, created and expiry (never the
    key)."""
    from rich.table import Table

    store = _store(file, secret)
    records = store.records()
    if not records:
        err_console.print(f"No API keys in {store.origin}; `athenaeum keys create NAME` makes one.")
        return
    now = datetime.now(UTC)
    table = Table(title=f"API keys in {store.origin}", title_justify="left")
    for column in ("name", "ends", "scopes", "groups", "created", "expires"):
        table.add_column(column)
    for r in records:
        expiry = _when(r.expires) + (" (expired)" if r.expired(now) else "")
        table.add_row(
            r.name,
            r.hint,
            " ".join(r.scopes) or "-",
            ", ".join(r.groups) or "-",
            _when(r.created),
            expiry,
        )
    console.print(table)


def revoke_command(
    name: Annotated[str, typer.Argument(help="The key's name.", show_default=False)],
    file: FileOption = None,
    secret: SecretOption = None,
) -> None:
    """Revoke a key: its hash is deleted from the key set.

    Locally, `athenaeum serve` refuses it at once. On AWS the authorizer refuses it within
    ATHENAEUM_API_KEYS_REFRESH_S plus the stack's authorizer_cache_seconds (API Gateway keeps
    an allowed token's answer that long).
    """
    store = _store(file, secret)

    def remove(records: list[KeyRecord]) -> list[KeyRecord]:
        names = [r.name for r in records]
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            fail(f"no key named {name!r} in {store.origin}{hint}")
        return [r for r in records if r.name != name]

    store.update(remove)
    err_console.print(f"Revoked API key {name!r} in {store.origin}.", highlight=False)


app.command("create")(create_command)
app.command("list")(list_command)
app.command("revoke")(revoke_command)

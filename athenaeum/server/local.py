"""`athenaeum serve`: the app under uvicorn on this machine.

Without OAuth or API keys the server listens on a loopback address only (or where the user
said, explicitly, that the network is private). uvicorn is imported here alone: the Lambda
function never needs it.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
from typing import Any

from athenaeum.errors import InvalidInputError
from athenaeum.server.auth.keystores import default_keys_file
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def uvicorn_config(app: Any, settings: Settings, *, host: str, port: int) -> Any:
    """uvicorn's configuration for the app: the connection limits that settings name, and the
    HTTP/1.1 protocol whose own errors are in the API's shape (see `protocol`)."""
    import uvicorn

    from athenaeum.server.http.protocol import protocol_class

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # The app writes its own JSON access log; uvicorn's would log query strings.
        access_log=False,
        proxy_headers=False,
        http=protocol_class(
            header_timeout_s=settings.header_timeout_s, max_header_bytes=settings.max_header_bytes
        ),
        timeout_keep_alive=int(max(1, settings.keep_alive_s)),
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


def worker_threads(settings: Settings) -> int:
    """Threads that run requests' blocking work (searches, file reads) at once: the setting, else
    twice the CPUs. Searches are CPU-bound; more threads than this only queue inside the process,
    each with its own allocator arena and stack, which is memory that stays after a burst."""
    return settings.worker_threads or 2 * max(1, len(os.sched_getaffinity(0)))


def uvicorn_server(config: Any, settings: Settings, *, ready: str | None = None) -> Any:
    """uvicorn's server as `athenaeum serve` runs it: the worker-thread limit set in the event
    loop before the first request and, given `ready`, one line on stderr once it accepts
    requests."""
    import anyio.to_thread
    import uvicorn

    threads = worker_threads(settings)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            await super().startup(sockets=sockets)
            if ready is not None and self.started and self.servers:
                bound = self.servers[0].sockets[0].getsockname()
                shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
                # One line, on stderr, when the server accepts requests (it goes to the logs).
                print(
                    f"Athenaeum is ready at http://{shown}:{bound[1]} ({ready}); Ctrl+C stops it",
                    file=sys.stderr,
                    flush=True,
                )

    return _Server(config)


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, insecure_no_auth: bool = False
) -> None:
    """Run the app under uvicorn after loading the index (so a bad bundle fails here)."""

    settings = with_keys_file(settings)
    if not settings.auth_configured:
        if not is_loopback(host) and not insecure_no_auth:
            raise InvalidInputError(
                f"refusing to listen on {host} without authentication: create an API key "
                "(athenaeum keys create NAME) or configure OAuth (ATHENAEUM_OAUTH_*), or pass "
                "--insecure-no-auth if this network is private",
                param="host",
            )
        # Listening on loopback only is the protection when nothing else is configured.
        settings = settings.model_copy(update={"insecure_no_auth": True})
    if not is_loopback(host) and host not in ("0.0.0.0", "::", ""):  # noqa: S104
        # The name it was told to listen on is one clients use: links may carry it.
        settings = settings.model_copy(
            update={"trusted_hosts": [*settings.trusted_hosts, host.strip("[]")]}
        )
    # The port is taken before the index loads: a busy one is said at once, not after.
    sock = listening_socket(host, port)
    try:
        provider = EngineProvider(settings)
        facts = provider.get().facts
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        config = uvicorn_config(create_app(settings, provider), settings, host=host, port=port)
        ready = f"{facts.chunks:,} chunks"
        if facts.backend == "s3vectors":
            ready += f" in {facts.location}"
        if settings.api_keys_file is not None:
            ready += f"; API keys from {settings.api_keys_file}"
        uvicorn_server(config, settings, ready=ready).run(sockets=[sock])
    finally:
        sock.close()


def with_keys_file(settings: Settings) -> Settings:
    """`settings` reading the key set `athenaeum keys` keeps in its default place, when no
    other key set is named and that file exists; an InvalidInputError when a named keys file
    does not exist (a typo would otherwise serve with no key accepted)."""
    if settings.api_keys_secret is not None:
        return settings
    if settings.api_keys_file is not None:
        if not settings.api_keys_file.expanduser().is_file():
            raise InvalidInputError(
                f"ATHENAEUM_API_KEYS_FILE names {settings.api_keys_file}, which does not exist; "
                "`athenaeum keys create NAME` makes it",
                param="api_keys_file",
            )
        return settings
    default = default_keys_file()
    if default.is_file():
        return settings.model_copy(update={"api_keys_file": default})
    return settings


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (as uvicorn binds its own), or an InvalidInputError
    that says why not and what to do: a port in use names the option that picks another."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidInputError(
            f"cannot listen on {where}: {host!r} is not an address of this machine "
            f"({exc.strerror})",
            param="host",
        ) from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            other = port + 1 if port < 65535 else 8000
            raise InvalidInputError(
                f"port {port} on {host} is already in use (another `athenaeum serve`, or another "
                f"server); pick a free one with --port, for example --port {other}",
                param="port",
            ) from exc
        if exc.errno == errno.EACCES:
            raise InvalidInputError(
                f"cannot listen on {where}: ports below 1024 need privileges; use --port 8000 "
                "or another port above 1023",
                param="port",
            ) from exc
        raise InvalidInputError(f"cannot listen on {where}: {exc.strerror}", param="host") from exc
    sock.set_inheritable(True)
    return sock

"""Headless Chromium for the pages a person sees, driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages, each ended by a NUL, on file descriptors 3 and 4),
with every host but 127.0.0.1 unreachable: names resolve to nothing and any proxied request
goes to a closed port.

    with Chromium.start(tmp_path) as browser:
        page = browser.open("http://127.0.0.1:8000/")
        page.text, page.requests, page.failed, page.screenshot
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome")


def executable() -> str | None:
    return next((found for name in NAMES if (found := shutil.which(name))), None)


@dataclass
class Page:
    url: str
    status: int | None
    text: str
    html: str
    # Every URL the page requested, and those that failed ("URL: net::ERR_...").
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: str | None = None
    screenshot: bytes | None = None


class Chromium:
    def __init__(self, proc: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self._proc = proc
        self._commands = commands
        self._answers = answers
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    @classmethod
    def start(cls, profile: Path) -> Chromium:
        binary = executable()
        if binary is None:
            raise FileNotFoundError("no Chromium on PATH")
        # The child reads commands on fd 3 and writes answers on fd 4; ours are moved above 10
        # first, so that placing them cannot overwrite one another.
        child_in, commands = os.pipe()
        answers, child_out = os.pipe()
        high_in = fcntl.fcntl(child_in, fcntl.F_DUPFD, 10)
        high_out = fcntl.fcntl(child_out, fcntl.F_DUPFD, 10)
        for fd in (child_in, child_out):
            os.close(fd)

        def place() -> None:
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",  # tests run as root
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--proxy-server=http://127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1",
                "--window-size=1100,1400",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=place,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(high_in)
        os.close(high_out)
        return cls(proc, commands, answers)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            self._send("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._commands)
        os.close(self._answers)

    # --- the protocol -------------------------------------------------------------------------

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise OSError("Chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def _send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._events.append(answer)

    def _wait_for(self, method: str, session: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return
            self._events.append(self._read(deadline))

    def _quiet(self, seconds: float) -> None:
        """Take in the events that arrive within `seconds` (late subresource requests)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._events.append(self._read(deadline))
        except TimeoutError:
            pass

    # --- pages ----------------------------------------------------------------------------------

    def open(self, url: str, *, screenshot: bool = False, timeout_s: float = 20) -> Page:
        self._events.clear()
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self._send("Network.enable", session=session)
        self._send("Page.enable", session=session)
        navigated = self._send("Page.navigate", {"url": url}, session=session)
        error = navigated.get("errorText") or None
        if error is None:
            self._wait_for("Page.loadEventFired", session, timeout_s)
            self._quiet(0.3)
        mine = [e for e in self._events if e.get("sessionId") == session]
        sent = [e["params"] for e in mine if e["method"] == "Network.requestWillBeSent"]
        requests = [p["request"]["url"] for p in sent]
        by_id = {p["requestId"]: p["request"]["url"] for p in sent}
        failed = [
            f"{by_id.get(e['params']['requestId'], '?')}: "
            f"{e['params']['errorText'] or e['params'].get('blockedReason')}"
            for e in mine
            if e["method"] == "Network.loadingFailed"
        ]
        statuses = [
            e["params"]["response"]["status"]
            for e in mine
            if e["method"] == "Network.responseReceived" and e["params"]["response"]["url"] == url
        ]
        text = html = ""
        shot = None
        if error is None:
            text = self._evaluate("document.body ? document.body.innerText : ''", session)
            html = self._evaluate("document.documentElement.outerHTML", session)
            if screenshot:
                data = self._send(
                    "Page.captureScreenshot",
                    {"format": "png", "captureBeyondViewport": True},
                    session=session,
                )["data"]
                shot = base64.b64decode(data)
        self._send("Target.closeTarget", {"targetId": target})
        return Page(
            url=url,
            status=statuses[0] if statuses else None,
            text=text,
            html=html,
            requests=requests,
            failed=failed,
            error=error,
            screenshot=shot,
        )

    def _evaluate(self, expression: str, session: str) -> str:
        result = self._send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        return str(result["result"].get("value", ""))

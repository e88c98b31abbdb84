"""A local server that speaks the OpenAI chat-completions protocol, for testing qualcode's language-model client
without a network or a model: it answers POST /v1/chat/completions on 127.0.0.1 with scripted replies.

A script is a function of (request body, this segment's attempt number, the request's headers) returning a ``Reply``:
``Reply(content=...)`` (a normal completion), ``Reply(status=429, headers={"Retry-After": "0.1"})``,
``Reply(status=500)``, ``Reply(delay=2.0, content=...)`` (slow), or ``Reply(drop=True)`` (the connection closed
without a response). ``keyword_answerer`` answers as a model would that codes by keywords.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

ANSWER = re.compile(r'The answer to code: (".*")\s*$', re.S)


@dataclass
class Reply:
    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    body: Any = None  # a JSON body other than a completion (an error object)


def answer_of(body: dict) -> str:
    """The segment a request asks about (the quoted answer at the end of the user message)."""
    match = ANSWER.search(body["messages"][-1]["content"])
    return json.loads(match.group(1)) if match else ""


def keyword_answerer(keywords: dict[str, list[str]]) -> Callable[[dict, int, dict], Reply]:
    """Codes an answer with every code one of whose keywords it contains, quoting the keyword as it is written there."""

    def script(body: dict, attempt: int, headers: dict) -> Reply:
        text = answer_of(body)
        codes = []
        for code, words in keywords.items():
            for word in words:
                found = re.search(re.escape(word), text, re.I)
                if found:
                    codes.append({"code": code, "confidence": 0.9, "evidence": found.group(0)})
                    break
        return Reply(content=json.dumps({"codes": codes}))

    return script


class ChatServer:
    """``with ChatServer(script) as server:`` serves on ``server.url`` (e.g. http://127.0.0.1:PORT/v1)."""

    def __init__(self, script: Callable[[dict, int, dict], Reply]) -> None:
        self.script = script
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.attempts: Counter = Counter()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm meets the client's delayed ACK
                # and every response waits 40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    key = answer_of(body) if body.get("messages") else ""
                    outer.attempts[key] += 1
                    attempt = outer.attempts[key]
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}}, {})
                    return
                reply = outer.script(body, attempt, dict(self.headers))
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.status != 200 or reply.body is not None:
                    self._send(reply.status, reply.body if reply.body is not None else {"error": {"message": "scripted"}}, reply.headers)
                    return
                completion = {"id": "test", "object": "chat.completion", "model": body.get("model"),
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content or ""}, "finish_reason": "stop"}]}
                self._send(200, completion, reply.headers)

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout under test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def asked(self) -> list[str]:
        """The segments asked about, in order (a segment asked twice appears twice)."""
        with self._lock:
            return [answer_of(body) for body in self.requests]

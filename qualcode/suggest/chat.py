"""A client for the OpenAI-compatible chat-completions protocol, which Ollama, llama.cpp's server, vLLM, LM Studio,
GPT4All and hosted APIs all speak: one POST to ``{endpoint}/chat/completions`` per question.

Written on httpx (already installed with spaCy, through weasel): the protocol is one request, and owning the
client keeps what matters to a study in view: where the text goes (a loopback endpoint only, unless the study's
settings allow another), timeouts, bounded retries (429 with its Retry-After, server errors, dropped connections)
and a key that is read from the environment at the last moment and never appears in a message.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from qualcode.errors import ProjectError
from qualcode.settings import SETTINGS_FILE, LlmSettings

MAX_ATTEMPTS = 5  # per request: the first and four retries
MAX_WAIT = 60.0  # seconds to wait before a retry, whatever Retry-After says
BACKOFF = (1.0, 2.0, 4.0, 8.0)  # before each retry after a server error or a dropped connection
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class ChatError(ProjectError):
    """The language model could not be asked (refused, unreachable, misconfigured): nothing was sent, or nothing more."""


class ChatFailed(Exception):
    """One question failed after its retries (a timeout, server errors, a dropped connection); the run goes on."""


def host_of(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def is_loopback(endpoint: str) -> bool:
    """Whether the endpoint is this machine: localhost, 127.0.0.0/8 or ::1 (a name that merely resolves there is not)."""
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(settings: LlmSettings) -> None:
    """Refuse, before anything is sent, an endpoint that is not this machine unless the study allows it."""
    if not is_loopback(settings.endpoint) and not settings.allow_remote:
        raise ChatError(
            f"the language model's endpoint {host_of(settings.endpoint)} is not this machine, and interview text goes only to "
            "this machine unless the study allows otherwise",
            path=SETTINGS_FILE, key_path="llm.endpoint",
            fix="run the model here (e.g. Ollama at http://127.0.0.1:11434/v1), or, if your ethics approval and data agreement "
                "allow sending interview text there, add 'allow_remote: true' under 'llm:'",
        )


def _key(settings: LlmSettings) -> str | None:
    """The key from the environment, read at the last moment; its name is said in a message only when it looks like one."""
    if settings.api_key_env is None:
        return None
    value = os.environ.get(settings.api_key_env)
    if not value:
        named = f"'{settings.api_key_env}'" if _ENV_NAME.match(settings.api_key_env) else "named under 'api_key_env'"
        raise ChatError(f"the environment variable {named} holding the language model's key is not set", path=SETTINGS_FILE,
                        key_path="llm.api_key_env", fix="export it in the shell that runs qualcode (the key never goes into a file)")
    return value


@dataclass
class ChatStats:
    requests: int = 0
    retries: int = 0
    seconds_waited: float = 0.0


class ChatClient:
    """Asks one model; safe to use from several threads at once (``concurrency`` of them)."""

    def __init__(self, settings: LlmSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        try:
            import httpx
        except ImportError:
            raise ChatError("the language-model client is not installed", fix="pip install 'qualcode[llm]'") from None
        check_endpoint(settings)
        self.settings, self.sleep, self.stats = settings, sleep, ChatStats()
        key = _key(settings)
        self._secret = key or ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=settings.endpoint.rstrip("/") + "/", headers=headers, timeout=settings.timeout,
                                  limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
                                  trust_env=False)  # no proxy from the environment: the text goes where the settings say, nowhere else
        self._httpx = httpx

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ChatClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never the headers
        return f"ChatClient({host_of(self.settings.endpoint)}, {self.settings.model})"

    def complete(self, messages: Sequence[dict[str, str]], *, json_reply: bool = True) -> str:
        """The model's reply to ``messages``; retries 429s (after Retry-After, at most ``MAX_WAIT``), server errors and
        dropped connections within ``MAX_ATTEMPTS``. ``ChatFailed`` when they run out, ``ChatError`` when the endpoint
        refuses outright (a wrong model, a wrong key)."""
        body: dict[str, Any] = {"model": self.settings.model, "messages": list(messages), "temperature": self.settings.temperature,
                                "stream": False}
        if json_reply:
            body["response_format"] = {"type": "json_object"}
        problem = "no answer"
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self.stats.retries += 1
            self.stats.requests += 1
            try:
                response = self._http.post("chat/completions", json=body)
            except self._httpx.TimeoutException:
                problem = f"no reply within {self.settings.timeout:g} s"
                if attempt >= 1:  # a model this slow will not answer the next time either
                    break
                continue
            except self._httpx.TransportError as exc:
                if attempt == 0 and isinstance(exc, self._httpx.ConnectError):
                    raise ChatError(f"the language model at {host_of(self.settings.endpoint)} cannot be reached ({type(exc).__name__})",
                                    path=SETTINGS_FILE, key_path="llm.endpoint",
                                    fix="start it (e.g. 'ollama serve') or correct 'endpoint' under 'llm:'") from None
                problem = f"the connection dropped ({type(exc).__name__})"
                self._wait(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                continue
            if response.status_code == 200:
                return _content(response)
            if response.status_code == 429:
                problem = "rate limited (429)"
                self._wait(_retry_after(response.headers.get("retry-after"), BACKOFF[min(attempt, len(BACKOFF) - 1)]))
                continue
            if response.status_code >= 500:
                problem = f"server error {response.status_code}"
                self._wait(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                continue
            raise ChatError(_refusal(response, self._secret), path=SETTINGS_FILE, key_path="llm",
                            fix="check 'model' (the name the server knows) and, if the endpoint needs one, the key's environment variable")
        raise ChatFailed(problem)

    def _wait(self, seconds: float) -> None:
        seconds = min(MAX_WAIT, max(0.0, seconds)) * (1.0 + 0.1 * random.random())
        self.stats.seconds_waited += seconds
        self.sleep(seconds)


def _content(response: Any) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""  # not the protocol's shape: a malformed reply, retried once by the caller
    return content if isinstance(content, str) else ""


def _retry_after(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


_TOKEN = re.compile(r"\b(?:sk|pk|rk|key|tok|api)[-_][A-Za-z0-9*._-]{4,}|[A-Za-z0-9_-]{28,}")


def redact(text: str, secret: str = "") -> str:
    """A server's words with anything that could be a key taken out: the key itself, and whatever looks like one
    (servers echo a wrong key, sometimes half-masked)."""
    if secret:
        text = text.replace(secret, "[key]")
    return _TOKEN.sub("[key]", text)


def _refusal(response: Any, secret: str = "") -> str:
    """What the server said, briefly, with no key in it (the key travels in a header; a server may echo it)."""
    detail = ""
    try:
        error = response.json().get("error")
        detail = error.get("message", "") if isinstance(error, dict) else str(error or "")
    except (ValueError, AttributeError):
        detail = response.text[:200] if isinstance(response.text, str) else ""
    detail = redact(" ".join(detail.split()), secret)[:200]
    return f"the language model refused the request ({response.status_code}{': ' + detail if detail else ''})"

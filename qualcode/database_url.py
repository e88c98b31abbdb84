"""Database locations as a researcher writes them, and as they may be shown.

A PostgreSQL server is named by a URL (``postgresql://user@host/db``, ``postgres://...``, parameters in its query)
or by a libpq key/value string (``host=db.example.org dbname=study``); anything else is an SQLite file. A password
may sit in either (``user:secret@``, ``?password=secret``, ``password=secret``, ``password='a b'``): it is never
shown (``redact`` masks it in any text, an error message included), and a child process such as ``pg_dump`` gets it
through its environment (``without_password``), never on a command line that every local user can read with ``ps``.
"""

from __future__ import annotations

import re

SCHEMES = ("postgresql:", "postgres:")
# libpq's connection keywords (a key/value string starts with one of them)
KEYWORDS = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "connect_timeout", "client_encoding",
    "options", "application_name", "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode", "requiressl", "sslcompression", "sslcert",
    "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "service", "target_session_attrs", "load_balance_hosts",
})
_KEY_VALUE = re.compile(r"\s*([A-Za-z_]+)\s*=")
_SECRET_KEYS = r"(?:password|sslpassword)"
# user:secret@ in a URL (the secret is what lies between the first ':' after '//' and the last '@' of the authority)
_USERINFO = re.compile(r"(?i)(postgres(?:ql)?://[^:/?#@\s]*:)([^/?#\s]*)(@)")
# password=secret in a query or a key/value string: quoted ('a b', with \' escapes) or up to the next space or '&'
_PARAMETER = re.compile(rf"(?i)(\b{_SECRET_KEYS}\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]*)")
_KEY_VALUE_PARAMETER = re.compile(rf"(?i)(\b{_SECRET_KEYS}\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")  # '&' is no separator there
MASK = "***"


def is_key_value(text: str) -> bool:
    """Whether ``text`` is a libpq key/value connection string (``host=... dbname=...``)."""
    match = _KEY_VALUE.match(text)
    return match is not None and match.group(1).lower() in KEYWORDS


def is_server(location: str) -> bool:
    """Whether a database location names a PostgreSQL server rather than an SQLite file."""
    return location.startswith(SCHEMES) or is_key_value(location)


def redact(text: str) -> str:
    """``text`` with every password a database URL or key/value string in it may carry replaced by ***."""
    parameter = _KEY_VALUE_PARAMETER if is_key_value(text) else _PARAMETER
    return parameter.sub(lambda m: m.group(1) + MASK, _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text))


def has_password(location: str) -> bool:
    """Whether a database location carries a password (in a URL's user part, its query, or a key/value string)."""
    return redact(location) != location


def server_problem(location: str) -> str | None:
    """What is wrong with a server location's form, in words (None: it parses). Checked without a driver, so a
    malformed URL is said before anything connects: an unclosed IPv6 bracket, a port that is not a number, a key/value
    string with an unknown keyword or an unclosed quote."""
    from urllib.parse import urlsplit  # only for a server URL: the import costs every command ~10 ms

    if location.startswith(SCHEMES):
        try:
            parts = urlsplit(location)
            _ = parts.port  # raises ValueError for a port out of range or not a number
        except ValueError as exc:
            return redact(str(exc)) or "malformed URL"
        if any(ord(character) < 32 for character in location):
            return "a control character in the URL"
        return None
    position, text = 0, location.strip()
    while position < len(text):
        match = _KEY_VALUE.match(text, position)
        if not match:
            return f"expected keyword=value at '{redact(text[position:position + 20])}'"
        if match.group(1).lower() not in KEYWORDS:
            return f"unknown connection keyword '{match.group(1)}'"
        position = match.end()
        while position < len(text) and text[position] == " ":
            position += 1
        if position < len(text) and text[position] == "'":
            end = position + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                return f"unclosed quote in '{match.group(1)}'"
            position = end + 1
        else:
            while position < len(text) and not text[position].isspace():
                position += 1
        while position < len(text) and text[position].isspace():
            position += 1
    return None


def without_password(location: str) -> tuple[str, str | None]:
    """The location without its password, and the password (None when it has none): for a child process, which gets
    the password in ``PGPASSWORD`` instead of its command line. Other parameters are kept as written."""
    password: list[str] = []

    def user(match: re.Match[str]) -> str:
        from urllib.parse import unquote

        password.append(unquote(match.group(2)))
        return match.group(1)[:-1] + match.group(3)

    def parameter(match: re.Match[str]) -> str:
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1] if value.endswith("'") and len(value) > 1 else value[1:])
        elif location.startswith(SCHEMES):
            from urllib.parse import unquote

            value = unquote(value)
        if match.group(1).strip().lower().startswith("password"):
            password.append(value)
            return ""
        return match.group(0)

    stripped = _USERINFO.sub(user, location)
    stripped = (_KEY_VALUE_PARAMETER if is_key_value(location) else _PARAMETER).sub(parameter, stripped)
    stripped = re.sub(r"[?&]&+|&&+", lambda m: m.group(0)[0], stripped).replace("?&", "?").rstrip("?&")
    return stripped.strip(), (password[-1] if password else None)

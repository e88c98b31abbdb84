"""Reading keys for the review loop: from a terminal (one key, no Enter), a pipe, or a script."""

from __future__ import annotations

import codecs
import os
import sys
from typing import Any, Iterable, Protocol

from qualcode.errors import ProjectError

RESIZED = "resize"  # not a key: the terminal changed size while the loop waited
ESCAPE = "escape"
CANCEL_KEYS = ("\x1b", "\x03")  # Escape, Ctrl-C


class KeyReader(Protocol):
    last_cancelled: str

    def read_key(self) -> str:
        """One key; '' at end of input."""

    def read_line(self, prompt: str) -> str | None:
        """A line of text typed after a prompt; None when cancelled (Escape, Ctrl-C), '' at end of input."""


class _Resized(Exception):
    pass


class TerminalKeys:
    """Single keys from a terminal in cbreak mode: no Enter needed, nothing echoed but prompts, Ctrl-C still interrupts.

    Entered as early as possible and without flushing input, so that keys typed while the review
    opens are neither echoed over the screen nor lost.
    """

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdin
        self.fd = self.stream.fileno()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.saved: list | None = None
        self.waiting = False
        self.resized = False
        self.last_cancelled = ""
        self._previous_handler: Any = None

    def __enter__(self) -> "TerminalKeys":
        import signal
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd, termios.TCSANOW)  # TCSAFLUSH, the default, would discard keys typed ahead
        if hasattr(signal, "SIGWINCH"):
            self._previous_handler = signal.signal(signal.SIGWINCH, self._on_resize)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous_handler is not None:
            signal.signal(signal.SIGWINCH, self._previous_handler)
        self._restore()

    def _on_resize(self, _signum: int, _frame: object) -> None:
        # Interrupt only a wait for a key: never a write in progress.
        self.resized = True
        if self.waiting:
            raise _Resized

    def _restore(self) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def _read_char(self) -> str:
        while True:
            if self.resized:
                self.resized = False
                return RESIZED
            self.waiting = True
            try:
                data = os.read(self.fd, 1)
            except _Resized:
                continue
            finally:
                self.waiting = False
            if not data:
                return ""
            text = self.decoder.decode(data)
            if text:
                return text

    def read_key(self) -> str:
        key = self._read_char()
        if key == "\x1b":
            self._drain_escape()
            return ESCAPE
        return key

    def _drain_escape(self) -> None:
        import select

        while select.select([self.fd], [], [], 0.02)[0]:
            if not os.read(self.fd, 16):
                break

    def read_line(self, prompt: str) -> str | None:
        """A small line editor in cbreak mode: Enter ends, Backspace and Ctrl-U edit, Escape and Ctrl-C cancel."""
        out = sys.stdout
        out.write(prompt)
        out.flush()
        typed: list[str] = []
        self.last_cancelled = ""
        while True:
            try:
                char = self._read_char()
            except KeyboardInterrupt:
                char = "\x03"
            if char == RESIZED:
                continue
            if char in ("", "\r", "\n"):
                out.write("\n")
                out.flush()
                return "".join(typed)
            if char in CANCEL_KEYS:
                if char == "\x1b":
                    self._drain_escape()
                self.last_cancelled = "".join(typed)
                out.write("\n")
                out.flush()
                return None
            if char in ("\x7f", "\x08"):
                if typed:
                    typed.pop()
                    out.write("\b \b")
            elif char == "\x15":  # Ctrl-U
                out.write("\b \b" * len(typed))
                typed.clear()
            elif char.isprintable():
                typed.append(char)
                out.write(char)
            out.flush()


class StreamKeys:
    """Keys from a pipe or file: each character is a key; newlines between keys are ignored. After a
    prompt, the rest of the line is the answer (Escape anywhere in it cancels)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdin
        self.last_cancelled = ""

    def __enter__(self) -> "StreamKeys":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read_key(self) -> str:
        while True:
            char = self.stream.read(1)
            if char == "\x1b":
                return ESCAPE
            if char not in ("\n", "\r"):
                return char

    def read_line(self, prompt: str) -> str | None:
        line = self.stream.readline().rstrip("\r\n")
        self.last_cancelled = ""
        for cancel in CANCEL_KEYS:
            if cancel in line:
                self.last_cancelled = line.split(cancel, 1)[0]
                return None
        return line


class ScriptedKeys:
    """Keys from a list, for tests: each item is one key, or the answer to one prompt ('ESC' or 'CTRL-C' cancel it,
    'CTRL-C' after typed text as 'text|CTRL-C')."""

    def __init__(self, script: Iterable[str]) -> None:
        self.script = list(script)
        self.prompts: list[str] = []
        self.last_cancelled = ""

    def __enter__(self) -> "ScriptedKeys":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read_key(self) -> str:
        if not self.script:
            return ""
        key = self.script.pop(0)
        if key == "CTRL-C":
            raise KeyboardInterrupt
        return key

    def read_line(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        answer = self.script.pop(0) if self.script else ""
        self.last_cancelled = ""
        for cancel in ("ESC", "CTRL-C"):
            if answer.endswith(cancel):
                self.last_cancelled = answer[: -len(cancel)].rstrip("|")
                return None
        return answer


def keys_for(stream: Any = None) -> TerminalKeys | StreamKeys:
    stream = stream or sys.stdin
    if stream is None or getattr(stream, "closed", False):
        raise ProjectError("standard input is closed, so review has no keys to read",
                           fix="run review in a terminal, or pipe keys into it: printf 'aaq' | qualcode review --plain")
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="replace")  # bytes that are not UTF-8 in piped keys are unknown keys, not a traceback
    return TerminalKeys(stream) if stream.isatty() else StreamKeys(stream)

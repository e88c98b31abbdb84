"""Reading keys for the review loop: from a terminal (one key, no Enter), a pipe, or a script."""

from __future__ import annotations

import codecs
import os
import sys
from typing import Iterable, Protocol


class KeyReader(Protocol):
    def read_key(self) -> str:
        """One key; '' at end of input."""

    def read_line(self, prompt: str) -> str:
        """A line of text typed after a prompt; '' at end of input."""


class TerminalKeys:
    """Single keys from a terminal in cbreak mode: no Enter needed, Ctrl-C still interrupts."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdin
        self.fd = self.stream.fileno()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.saved: list | None = None

    def __enter__(self) -> "TerminalKeys":
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _restore(self) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def read_key(self) -> str:
        while True:
            data = os.read(self.fd, 1)
            if not data:
                return ""
            text = self.decoder.decode(data)
            if text:
                if text == "\x1b":
                    self._drain_escape()
                    return "escape"
                return text

    def _drain_escape(self) -> None:
        import select

        while select.select([self.fd], [], [], 0.02)[0]:
            if not os.read(self.fd, 16):
                break

    def read_line(self, prompt: str) -> str:
        import tty

        self._restore()
        try:
            return input(prompt)
        except EOFError:
            return ""
        finally:
            tty.setcbreak(self.fd)


class StreamKeys:
    """Keys from a pipe or file: each character is a key; newlines between keys are ignored."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdin

    def __enter__(self) -> "StreamKeys":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read_key(self) -> str:
        while True:
            char = self.stream.read(1)
            if char not in ("\n", "\r"):
                return char

    def read_line(self, prompt: str) -> str:
        return self.stream.readline().rstrip("\n")


class ScriptedKeys:
    """Keys from a list, for tests: each item is one key, or the answer to one prompt."""

    def __init__(self, script: Iterable[str]) -> None:
        self.script = list(script)
        self.prompts: list[str] = []

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

    def read_line(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.script.pop(0) if self.script else ""


def keys_for(stream=None):
    stream = stream or sys.stdin
    return TerminalKeys(stream) if stream.isatty() else StreamKeys(stream)

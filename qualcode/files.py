"""Reading a file named by a user or a setting, whatever is at that path.

A FIFO would make a plain read wait forever, ``/dev/zero`` never ends, a symbolic link loop raises, and a file
may be any size. ``read_bounded`` opens without waiting (O_NONBLOCK), accepts only an ordinary file, and reads at
most ``limit`` bytes; anything else is a ``NotReadable`` saying what is there, for the caller to turn into its own
located message.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotReadable(Exception):
    """What is at a path, in words, when it cannot be read as a file of bounded size."""


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The bytes of the ordinary file at ``path``, refused beyond ``limit`` bytes. ``FileNotFoundError`` when nothing
    is there; ``NotReadable`` for a link loop, a folder, a FIFO, a device or a socket, or a file over the limit."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotReadable("a symbolic link loop") from None
        if exc.errno == errno.EISDIR:
            raise NotReadable("a folder, not a file") from None
        raise
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise NotReadable("a folder, not a file")
        if not stat.S_ISREG(status.st_mode):
            raise NotReadable("a pipe, device or socket, not a file")
        if status.st_size > limit:
            raise NotReadable(f"larger than {limit // 1_000_000:,} MB" if limit >= 1_000_000 else f"larger than {limit:,} bytes")
        os.set_blocking(fd, True)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:  # it grew while being read
            raise NotReadable(f"larger than {limit:,} bytes")
        return data
    finally:
        os.close(fd)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def bom_encoding(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start of ``data`` declares (UTF-32 before UTF-16, whose mark begins the
    same), or None when there is none."""
    return next((encoding for bom, encoding in _BOMS if data.startswith(bom)), None)


def text_of(data: bytes) -> str:
    """A settings or codebook file's text: UTF-8, or UTF-16/32 where a byte-order mark says so (Windows editors save
    'Unicode' that way). ``UnicodeDecodeError`` otherwise."""
    return data.decode(bom_encoding(data) or "utf-8")

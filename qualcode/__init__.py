"""qualcode: deductive coding of interview transcripts with spaCy suggestions and human review."""

from typing import Any


def __getattr__(name: str) -> Any:
    # The version is read from the installed package's metadata, the one place it is written
    # (pyproject.toml); looked up on first use because importlib.metadata is slow to import.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("qualcode")
        except PackageNotFoundError:  # run from a source tree that was never installed
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'qualcode' has no attribute {name!r}")

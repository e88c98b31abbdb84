"""qualcode: deductive coding of interview transcripts with spaCy suggestions and human review."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qualcode")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

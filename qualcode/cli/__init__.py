"""The qualcode command line: parses arguments, calls the library, renders results with rich."""
# ruff: noqa: I001  (commands appear in --help in the order these imports register them)

from qualcode.cli._common import app
from qualcode.cli import init as _init  # noqa: F401
from qualcode.cli import code as _code  # noqa: F401  (registers the command)
from qualcode.cli import codebook as _codebook  # noqa: F401
from qualcode.cli import export as _export  # noqa: F401
from qualcode.cli import review as _review  # noqa: F401
from qualcode.cli import status as _status  # noqa: F401
from qualcode.cli import stats as _stats  # noqa: F401
from qualcode.cli import import_qdpx as _import_qdpx  # noqa: F401
from qualcode.cli import learn as _learn  # noqa: F401
from qualcode.cli import discover as _discover  # noqa: F401
from qualcode.cli import maintenance as _maintenance  # noqa: F401
from qualcode.cli import db as _db  # noqa: F401


def main() -> None:
    app()

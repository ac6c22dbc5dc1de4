"""``rayir fit | encode | index | search | re_rank | evaluate | export`` and the ``jobs/*.py`` entry points.

Both go through one jsonargparse parser, so a YAML config written for ``rayir index --config x.yaml``
works unchanged with ``python jobs/index.py --config x.yaml`` and ``ray job submit -- python jobs/index.py``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError, UserError
from ..logs import configure_logging
from .evaluation import evaluate
from .export import export
from .stages import EncodingOptions, encode, fit, index, re_rank, search

__all__ = [
    "EncodingOptions",
    "STAGES",
    "encode",
    "evaluate",
    "export",
    "fit",
    "index",
    "main",
    "re_rank",
    "run_job",
    "search",
]

STAGES: dict[str, Callable[..., Any]] = {
    "fit": fit,
    "encode": encode,
    "index": index,
    "search": search,
    "re_rank": re_rank,
    "evaluate": evaluate,
    "export": export,
}

# Bad input (unreadable files, wrong settings, existing outputs) ends with one line and exit status 2.
_USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
# So does storage the user must fix: full, read-only, or not writable.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def main(args: Sequence[str] | None = None) -> None:
    """The ``rayir`` console script: one subcommand per stage."""
    args = list(sys.argv[1:] if args is None else args)
    stage_at = next((i for i, a in enumerate(args) if a in STAGES), len(args))
    if any(a == "--config" or a.startswith("--config=") for a in args[:stage_at]):
        # jsonargparse would read a stage's flat file at the top level, ignore its keys and run on nulls
        _fail(ConfigError("--config goes after the stage word (rayir index --config x.yaml): its keys are the stage's"))
    stage = STAGES.get(args[0]) if args else None
    _run(STAGES, [args[0], *gather_list_values(stage, args[1:])] if stage else args, prog="rayir")


def run_job(stage: str, args: Sequence[str] | None = None) -> None:
    """``jobs/<stage>.py``: the ``rayir <stage>`` parser without the subcommand word."""
    _run(STAGES[stage], gather_list_values(STAGES[stage], list(sys.argv[1:] if args is None else args)))


def run_function(function: Callable[..., Any], args: Sequence[str] | None = None) -> None:
    """A command line for any typed function (the quickstart job)."""
    _run(function, gather_list_values(function, list(sys.argv[1:] if args is None else args)))


def gather_list_values(function: Callable[..., Any], args: list[str]) -> list[str]:
    """``--run a.run b.run`` for a parameter that takes a list, as ``--run=["a.run", "b.run"]``.

    jsonargparse reads a list option only as one JSON/YAML value; people type values one after the
    other, as argparse's ``nargs="+"`` takes them. Only the parameters whose type admits a list are
    gathered, so a stray second value elsewhere is still an error; a value already written as a
    list (``'[nDCG@10, R@100]'``) is left as it is.
    """
    hints = typing.get_type_hints(function)
    lists = {name for name, hint in hints.items() if _admits_list(hint)}
    gathered: list[str] = []
    i = 0
    while i < len(args):
        flag, _, inline = args[i].partition("=")
        name = flag.removeprefix("--")
        if not flag.startswith("--") or name not in lists:
            gathered.append(args[i])
            i += 1
            continue
        values = [inline] if inline else []
        i += 1
        while i < len(args) and not args[i].startswith("-"):
            values.append(args[i])
            i += 1
        if len(values) == 1 and values[0].lstrip().startswith("["):
            gathered.append(f"{flag}={values[0]}")
        elif values:
            gathered.append(f"{flag}={json.dumps(values)}")
        else:
            gathered.append(flag)
    return gathered


def _admits_list(hint: Any) -> bool:
    return typing.get_origin(hint) is list or any(typing.get_origin(a) is list for a in typing.get_args(hint))


# Flags of the process rather than of a stage: taken out before parsing, as environment variables.
RUNTIME_FLAGS = {"--ray_logs": "RAYIR_RAY_LOGS", "--dashboard": "RAYIR_DASHBOARD"}


def _run(components: Any, args: list[str], prog: str | None = None) -> None:
    from jsonargparse import auto_cli

    for flag, variable in RUNTIME_FLAGS.items():
        if flag in args:
            args = [a for a in args if a != flag]
            os.environ[variable] = "1"
    configure_logging()
    try:
        auto_cli(components, args=args, as_positional=False, parser_class=_parser(prog))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    except _USER_ERRORS as err:
        _fail(err)
    except OSError as err:
        if err.errno not in _STORAGE_ERRNOS:
            raise
        _fail(err)


def _parser(prog: str | None = None) -> type:
    """jsonargparse's parser with ``--version`` (on ``rayir`` and on each stage and job), the
    docstrings' reStructuredText markup taken out of ``--help``, and ``rayir`` as the program name
    of ``python -m rayir`` (which would otherwise show ``__main__.py``)."""
    from jsonargparse import ArgumentParser

    from .. import __version__

    class Parser(ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if prog is not None and not args and "prog" not in kwargs:
                kwargs["prog"] = prog
            kwargs.setdefault(
                "epilog",
                "--ray_logs shows Ray's own log lines (hidden by default); --dashboard starts the local Ray "
                "dashboard and prints its address.",
            )
            super().__init__(*args, **kwargs)
            self.add_argument("--version", action="version", version=f"rayir {__version__}")

        def format_help(self) -> str:
            return plain_text(super().format_help())

    return Parser


def plain_text(text: str) -> str:
    """``code`` and :role:`target` as plain words (what a terminal shows of reStructuredText)."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``", r"\1", text)


def _fail(err: BaseException) -> None:
    """One line, exit status 2: what is wrong and where, without a traceback."""
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
    sys.exit(2)

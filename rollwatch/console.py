"""Running a typer app so that every refusal is one line on stderr and a non-zero exit.

click's own rendering of a usage error is a usage line, a hint and a boxed message (three
to six lines); an operator scanning a log or a script reading stderr wants one line that
names the command, the option and what to fix. Errors of ours (:class:`RollwatchError`)
and the operating system's (a file that cannot be written, a port that is taken) are
refusals too; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any, NoReturn

import typer
from typer._click import exceptions as click  # typer >= 0.23 vendors click; its exceptions live here

from rollwatch.errors import RollwatchError

__all__ = ["error_line", "run_app"]

USAGE_EXIT = 2
"""click's exit code for bad usage; rollwatch's refusals use it too."""


def error_line(prog: str, problem: str) -> str:
    """``prog: problem`` on one line (newlines inside ``problem`` folded to ``; ``)."""
    text = "; ".join(part.strip() for part in str(problem).splitlines() if part.strip())
    return f"{prog}: {text}"


def _usage_line(exc: click.ClickException, prog: str) -> str:
    where = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx is not None else prog
    line = error_line(where, exc.format_message())
    return line + (f" (see {where} --help)" if isinstance(exc, click.UsageError) else "")


def _one_line_warnings(prog: str) -> None:
    """Warnings as ``prog: warning: text``, without the source line Python adds."""

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        sys.stderr.write(error_line(f"{prog}: warning", str(message)) + "\n")

    warnings.showwarning = show


def run_app(app: typer.Typer, prog: str, args: list[str] | None = None) -> NoReturn:
    """Run ``app`` with ``args`` (default ``sys.argv[1:]``) and exit with its code."""
    _one_line_warnings(prog)
    # Without a handler anywhere, Python prints aiokafka's connection errors bare on stderr,
    # before our own line that says the same in words. A worker's log handlers (set up
    # later by faust on the root logger) still receive them: a NullHandler stops nothing.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        code = app(args=args, prog_name=prog, standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(USAGE_EXIT)
    except click.ClickException as exc:
        typer.secho(_usage_line(exc, prog), err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo(f"{prog}: aborted", err=True)
        sys.exit(130)
    except RollwatchError as exc:
        typer.secho(error_line(prog, str(exc)), err=True, fg=typer.colors.RED)
        sys.exit(USAGE_EXIT)
    except BrokenPipeError:
        sys.exit(1)
    except OSError as exc:
        # A path that cannot be written or read, a port that is taken: the system's words name it.
        typer.secho(error_line(prog, str(exc)), err=True, fg=typer.colors.RED)
        sys.exit(USAGE_EXIT)
    sys.exit(code if isinstance(code, int) else 0)

"""The `conveyor` command: the click group every command hangs off, and how errors end.

Every failure ends the same way: ONE line `error: <message>` on stderr and a non-zero exit
(2 for a usage mistake, 1 otherwise). Unexpected exceptions too, with a hint to set
CONVEYOR_DEBUG=1 to see the traceback; Ctrl-C exits 130 quietly. Commands raise
ConveyorError (or click's own errors) and never print errors or call sys.exit themselves.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from click.exceptions import NoArgsIsHelpError

from conveyor.cli.agents import install_rules, install_skills
from conveyor.cli.alerts import alerts
from conveyor.cli.deploy import deploy, deploys, promote
from conveyor.cli.dev import dev
from conveyor.cli.envvars import env
from conveyor.cli.init import init
from conveyor.cli.keys import keys
from conveyor.cli.login import login
from conveyor.cli.mcp import install_mcp, mcp
from conveyor.cli.options import BadArgument, Connection, connection_options
from conveyor.cli.projects import projects
from conveyor.cli.runs import runs
from conveyor.cli.schedules import schedules
from conveyor.cli.server import server
from conveyor.cli.tokens import tokens
from conveyor.cli.trigger import trigger
from conveyor.cli.worker import worker
from conveyor.errors import ConveyorError
from conveyor.version import __version__

USAGE_EXIT = 2
ERROR_EXIT = 1
INTERRUPTED_EXIT = 130


def debug_enabled() -> bool:
    return os.environ.get("CONVEYOR_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def fail(message: str, code: int = ERROR_EXIT) -> NoReturn:
    """Print the one error line and exit."""
    message = " ".join(str(message).split()) or "unknown error"
    click.echo(click.style("error:", fg="red", bold=True) + f" {message}", err=True)
    sys.exit(code)


def _first_line(message: str) -> str:
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


class ConveyorGroup(click.Group):
    """A click group that turns every way a command can fail into one line on stderr."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        prog_name = prog_name or "conveyor"  # also under `python -m conveyor.cli.main`
        if not standalone_mode:
            return super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        try:
            result = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())  # `conveyor` alone, or `conveyor runs`: show the help
            sys.exit(0)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None and not isinstance(exc, BadArgument):
                hint = f" (see `{exc.ctx.command_path} --help`)"
            fail(exc.format_message() + hint, USAGE_EXIT)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code or ERROR_EXIT)
        except (click.Abort, KeyboardInterrupt):
            sys.exit(INTERRUPTED_EXIT)
        except ConveyorError as exc:
            if debug_enabled():
                traceback.print_exc()
            fail(exc.message or type(exc).__name__)
        except SystemExit:
            raise
        except Exception as exc:
            if debug_enabled():
                traceback.print_exc()
            text = str(exc).strip()
            detail = f"{type(exc).__name__}: {_first_line(text)}" if text else type(exc).__name__
            fail(f"unexpected {detail} (set CONVEYOR_DEBUG=1 to see the traceback)")
        sys.exit(result if isinstance(result, int) else 0)


@click.group(
    name="conveyor",
    cls=ConveyorGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, "--version", "-V", prog_name="conveyor", message="%(prog)s %(version)s"
)
@connection_options
@click.pass_context
def main(ctx: click.Context, api_url: str | None, secret_key: str | None) -> None:
    """Conveyor: durable background tasks for Python.

    \b
    Start here:
      conveyor init              add a config and an example task to this folder
      conveyor dev               run the platform locally (API and worker)
      conveyor trigger TASK --payload '{"name": "Ada"}' --wait
      conveyor runs list

    --api-url and --secret-key default to CONVEYOR_API_URL and CONVEYOR_SECRET_KEY, then to
    the `conveyor dev` server of the project you are in.
    """
    ctx.obj = Connection(api_url=api_url, secret_key=secret_key)


main.add_command(init)
main.add_command(dev)
main.add_command(server)
main.add_command(trigger)
main.add_command(runs)
main.add_command(schedules)
main.add_command(env)
main.add_command(alerts)
main.add_command(tokens)
main.add_command(worker)
main.add_command(login)
main.add_command(projects)
main.add_command(keys)
main.add_command(mcp)
main.add_command(install_mcp)
main.add_command(install_rules)
main.add_command(install_skills)
main.add_command(deploy)
main.add_command(deploys)
main.add_command(promote)


if __name__ == "__main__":  # pragma: no cover
    main()

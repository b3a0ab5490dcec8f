"""`conveyor mcp` (the MCP server over stdio) and `conveyor install-mcp` (register it with AI
clients).

`conveyor mcp` always serves: no prompt, no banner, nothing on stdout but the protocol (a host
spawns it, often on a PTY). `install-mcp` writes each client's config file in its own shape,
merging into what is there; see conveyor/mcp/install/clients.py for the paths.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from conveyor.cli.options import BadArgument, resolve_connection
from conveyor.errors import ConveyorError
from conveyor.extras import install_hint
from conveyor.mcp.install.clients import CLIENTS, Place, find_secret, server_args
from conveyor.mcp.install.configfile import apply, plan


@click.command(short_help="Run the MCP server for AI assistants (stdio).")
@click.option(
    "--readonly",
    is_flag=True,
    help="Leave out every tool that changes something (trigger, cancel, ...).",
)
@click.option("--dev-only", is_flag=True, help="Only ever act on the dev environment.")
@click.option(
    "--project-ref",
    metavar="REF",
    default=None,
    help="Pin the server to one project (proj_... or slug).",
)
@click.option(
    "--api-url",
    metavar="URL",
    default=None,
    help="Conveyor server. [env: CONVEYOR_API_URL; default: the project's `conveyor dev`]",
)
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Act as if started in this folder (for clients that start servers elsewhere).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the server's log here instead of stderr.",
)
def mcp(
    readonly: bool,
    dev_only: bool,
    project_ref: str | None,
    api_url: str | None,
    project_dir: Path | None,
    log_file: Path | None,
) -> None:
    """Serve Conveyor's MCP tools over stdio, for an AI client to start.

    \b
    In a project folder where `conveyor dev` runs it needs no setup: it finds the dev server and
    its key. Elsewhere it uses CONVEYOR_API_URL with CONVEYOR_SECRET_KEY (an environment key) or
    CONVEYOR_ACCESS_TOKEN / `conveyor login` (a personal access token). Register it with a client
    with `conveyor install-mcp --client NAME`.
    """
    if importlib.util.find_spec("mcp") is None:
        raise ConveyorError(f"`conveyor mcp` needs the MCP SDK: {install_hint('mcp')}")
    if project_dir is not None:
        os.chdir(project_dir)
    from conveyor.mcp.access import ServerOptions
    from conveyor.mcp.server import serve

    options = ServerOptions(
        api_url=resolve_connection(api_url, None).api_url,
        project_ref=project_ref,
        dev_only=dev_only,
        readonly=readonly,
    )
    serve(options, log_file=log_file.resolve() if log_file else None)


def conveyor_command() -> list[str]:
    """How a client should start `conveyor`: the absolute path of this installation's script, since
    GUI clients see neither the shell's PATH nor a virtualenv."""
    scripts = Path(sys.executable).parent
    for name in ("conveyor", "conveyor.exe"):
        if (scripts / name).is_file():
            return [str(scripts / name)]
    found = shutil.which("conveyor")
    return [str(Path(found).absolute())] if found else [sys.executable, "-m", "conveyor.cli.main"]


@click.command("install-mcp", short_help="Register the Conveyor MCP server with AI clients.")
@click.option(
    "--client",
    "client_names",
    multiple=True,
    required=True,
    metavar="NAME",
    type=click.Choice(sorted(CLIENTS)),
    help="The AI client; repeat for several.",
)
@click.option(
    "--scope",
    type=click.Choice(["user", "project"]),
    default=None,
    help="user: for all your projects; project: a file in this folder for everyone who clones it "
    "(default: user where the client has it).",
)
@click.option(
    "--readonly", is_flag=True, help="The server leaves out every tool that changes something."
)
@click.option("--dev-only", is_flag=True, help="The server only acts on the dev environment.")
@click.option("--project-ref", metavar="REF", default=None, help="Pin the server to one project.")
@click.option(
    "--api-url", metavar="URL", default=None, help="The Conveyor server the server talks to."
)
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Start the server as if in this folder (useful with Claude Desktop).",
)
@click.option(
    "--command",
    "command_line",
    metavar="CMD",
    default=None,
    help="How the client starts conveyor (default: this installation's absolute path), e.g. "
    "'uvx --from conveyor[mcp] conveyor'.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be written; change nothing.")
@click.option(
    "--uninstall", is_flag=True, help="Remove the Conveyor server from the clients' config instead."
)
def install_mcp(
    client_names: tuple[str, ...],
    scope: str | None,
    readonly: bool,
    dev_only: bool,
    project_ref: str | None,
    api_url: str | None,
    project_dir: Path | None,
    command_line: str | None,
    dry_run: bool,
    uninstall: bool,
) -> None:
    """Add the Conveyor MCP server to AI clients' config files, merging into what is there.

    \b
    Clients: claude-code, claude-desktop, cursor, windsurf, vscode, zed, cline, codex,
    gemini-cli, opencode. A file is backed up before it changes; running it again changes
    nothing; --uninstall removes only Conveyor's entry. No key or token is ever written: the
    server finds its credentials when it starts.
    """
    place = Place(home=Path.home(), cwd=Path.cwd(), platform=sys.platform, environ=dict(os.environ))
    command = shlex.split(command_line) if command_line else conveyor_command()
    if not command:
        raise BadArgument("--command must not be empty")
    args = server_args(
        readonly=readonly,
        dev_only=dev_only,
        project_ref=project_ref,
        api_url=api_url,
        project_dir=project_dir.resolve() if project_dir else None,
    )
    lines: list[str] = []
    for name in client_names:
        client = CLIENTS[name]
        chosen = scope or client.default_scope
        if chosen not in client.paths:
            raise BadArgument(
                f"{client.title} has no {chosen} scope; use --scope {' or '.join(client.paths)}"
            )
        entry = None if uninstall else client.entry([*command, *args])
        if entry is not None and chosen == "project" and (found := find_secret(entry)):
            raise BadArgument(
                f"refusing to write {found} into a project file others may read "
                f"({client.path('project', place)}); pass it through the environment instead"
            )
        change = plan(client.path(chosen, place), client.format, client.keys, "conveyor", entry)
        if not dry_run:
            try:
                change = apply(change)
            except OSError as exc:
                raise ConveyorError(
                    f"cannot write {change.path}: {exc.strerror or exc}; nothing else was "
                    "changed in it"
                ) from exc
        verb = {
            "created": "create",
            "updated": "update",
            "removed": "remove from",
            "unchanged": "leave",
            "absent": "leave",
        }[change.action]
        head = f"{client.title} ({chosen}): "
        if dry_run:
            lines.append(f"{head}would {verb} {change.path}")
            if entry is not None and change.action != "unchanged":
                lines.append(_indent(_snippet(client.format, client.keys, entry)))
            continue
        if change.action == "unchanged":
            lines.append(f"{head}already set up in {change.path}")
        elif change.action == "absent":
            lines.append(f"{head}nothing to remove in {change.path}")
        else:
            lines.append(f"{head}{change.action} {change.path}")
            if change.backup:
                lines.append(f"  backup: {change.backup}")
            if change.lost_comments:
                lines.append("  note: the file's comments were not kept (they are in the backup)")
            if not uninstall:
                lines.append(f"  next: {client.restart}")
        if not uninstall and chosen == "project" and not command_line:
            lines.append(
                f"  note: the command is this machine's path ({command[0]}); for a file others "
                "use, pass --command conveyor (or 'uvx --from conveyor[mcp] conveyor')"
            )
    if not uninstall and importlib.util.find_spec("mcp") is None:
        lines.append(f"note: the server needs the MCP SDK here: {install_hint('mcp')}")
    click.echo("\n".join(lines))


def _snippet(fmt: str, keys: tuple[str, ...], entry: dict[str, object]) -> str:
    """The entry as it appears in the client's file."""
    nested: dict[str, object] = {"conveyor": entry}
    for key in reversed(keys):
        nested = {key: nested}
    if fmt == "toml":
        import tomlkit

        return tomlkit.dumps(nested).strip()
    return json.dumps(nested, indent=2)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())

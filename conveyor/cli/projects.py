"""`conveyor projects create|list`: the projects of your organizations, with a personal access
token (`conveyor login`). Each project has the environments dev, staging and prod; preview
environments come per branch (`conveyor keys show --env preview --branch NAME`).
"""

from __future__ import annotations

import click

from conveyor.cli.options import account_client, account_options, json_option
from conveyor.cli.output import print_json
from conveyor.models import Project


@click.group(no_args_is_help=True)
def projects() -> None:
    """Create and list projects (needs `conveyor login`)."""


@projects.command("create")
@click.argument("name")
@click.option("--slug", default=None, help="Short name for commands (default: made from NAME).")
@click.option(
    "--org",
    "organization",
    metavar="ORG",
    default=None,
    help="Organization slug; needed only when you belong to several.",
)
@json_option
@account_options
def create_project(
    name: str, slug: str | None, organization: str | None, as_json: bool, api_url: str | None
) -> None:
    """Create a project with its dev, staging and prod environments."""
    with account_client(api_url) as client:
        project = client.projects.create(name, slug=slug, organization=organization)
    if as_json:
        print_json(project.model_dump(mode="json"))
        return
    click.echo(
        f"Created project {project.name} ({project.id}) in {project.organization}\n"
        f"  environments  {', '.join(e.slug for e in project.environments)}\n"
        f"  keys          conveyor keys show --project {project.slug} --env dev"
    )


def _line(project: Project) -> str:
    envs = ",".join(e.slug for e in project.environments)
    return f"{project.id:<25} {project.slug:<16} {project.organization:<10} {envs}"


@projects.command("list")
@json_option
@account_options
def list_projects(as_json: bool, api_url: str | None) -> None:
    """List the projects of your organizations, oldest first."""
    with account_client(api_url) as client:
        found = client.projects.list()
    if as_json:
        print_json([p.model_dump(mode="json") for p in found])
        return
    if not found:
        click.echo("No projects yet: conveyor projects create NAME")
        return
    click.echo(f"{'PROJECT':<25} {'SLUG':<16} {'ORG':<10} ENVIRONMENTS")
    for project in found:
        click.echo(_line(project))

"""What `conveyor dev` and `conveyor worker` print while they run: one readable line per event."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from conveyor.models import ModuleFailure


class RunReporter:
    """Prints what happens to runs, one line each, like a log you can read."""

    def __init__(self, console: Console, quiet: bool = False, reloads: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.reloads = reloads  # the process reloads the code when files change (conveyor dev)

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        stamp = time.strftime("%H:%M:%S")
        if event == "load_error":
            if data.get("failures"):
                self._failures(stamp, data["failures"])
                kept = data["kept"]
                names = ", ".join(kept[:5]) + (
                    f" and {len(kept) - 5} more" if len(kept) > 5 else ""
                )
                self.console.print(
                    f"[dim]         Kept the code loaded before: it runs {names} until the modules "
                    "import again.[/]",
                    highlight=False,
                )
            else:
                self.console.print(
                    f"[dim]{stamp}[/] [bold red]Task code failed to load:[/] {data['message']}",
                    highlight=False,
                )
            if self.reloads:
                self.console.print(
                    "[dim]         Fix it and save: the worker reloads on changes.[/]"
                )
        elif event == "loaded":
            tasks = ", ".join(data["tasks"]) or "(none found)"
            verb = "Loaded" if data["generation"] == 1 else "Reloaded"
            of = f" of version [bold]{data['version']}[/]" if data.get("version") else ""
            self.console.print(
                f"[dim]{stamp}[/] {verb} tasks{of}: [cyan]{tasks}[/]", highlight=False
            )
            if data.get("failures"):
                self._failures(stamp, data["failures"])
                if self.reloads:
                    self.console.print(
                        "[dim]         Fix it and save: the worker reloads on changes.[/]"
                    )
        elif event == "machine":
            self.console.print(
                f"[dim]{stamp} {data['machine']} executors: memory capped, CPU {data['cpu']}[/]",
                highlight=False,
            )
        elif event == "no_version":
            self.console.print(
                f"[dim]{stamp}[/] Nothing is deployed yet: runs wait in PENDING_VERSION until "
                "`conveyor deploy`; this worker picks the version up then.",
                highlight=False,
            )
        elif event == "link_error":
            still = " (still)" if data.get("again") else ""
            self.console.print(
                f"[dim]{stamp}[/] [yellow]engine error{still}:[/] {data['message']}",
                highlight=False,
            )
        elif event == "link_ok":
            self.console.print(
                f"[dim]{stamp}[/] [green]engine reachable again[/] after {data['seconds']:.0f} s",
                highlight=False,
            )
        elif self.quiet:
            return
        elif event == "started":
            self.console.print(
                f"[dim]{stamp}[/] [blue]▶[/] {data['task_id']} [dim]{data['run_id']}[/] "
                f"attempt {data['attempt']}",
                highlight=False,
            )
        elif event == "finished":
            kind = data["kind"]
            ms = data["seconds"] * 1000
            if kind == "completed":
                self.console.print(
                    f"[dim]{stamp}[/] [green]✔[/] {data['task_id']} [dim]{data['run_id']}[/] "
                    f"{ms:.0f} ms",
                    highlight=False,
                )
            else:
                message = (data.get("error") or {}).get("message", "")
                self.console.print(
                    f"[dim]{stamp}[/] [red]✘[/] {data['task_id']} [dim]{data['run_id']}[/] "
                    f"{kind}: {message}",
                    highlight=False,
                )
        elif event == "suspended":
            self.console.print(
                f"[dim]{stamp}[/] [yellow]⏸[/] {data['task_id']} [dim]{data['run_id']}[/] "
                f"waiting on {data['waiting']}",
                highlight=False,
            )

    def _failures(self, stamp: str, failures: list[ModuleFailure]) -> None:
        for failure in failures:
            line = f", line {failure.line}" if failure.line else ""
            self.console.print(
                f"[dim]{stamp}[/] [bold red]Not loaded:[/] {failure.file}{line}: {failure.error} "
                "[dim](its tasks cannot run; the other modules' tasks can)[/]",
                highlight=False,
            )

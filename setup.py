"""One build step beyond pyproject.toml: ship docs/ inside the package as `conveyor/docs`.

The MCP server's `search_docs` tool reads the project's own documentation from the installed
package, so it works offline and from a wheel. In the source tree (and an editable install)
the docs stay where they are, in docs/, and the server reads them there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DOCS = Path(__file__).parent / "docs"


class BuildWithDocs(build_py):
    """build_py, then copy docs/**/*.md into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode or not DOCS.is_dir():
            return
        target = Path(self.build_lib) / "conveyor" / "docs"
        shutil.rmtree(target, ignore_errors=True)
        for page in DOCS.rglob("*.md"):
            destination = target / page.relative_to(DOCS)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, destination)


setup(cmdclass={"build_py": BuildWithDocs})

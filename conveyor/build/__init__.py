"""Building a deploy on the deploying machine: the bundle of the task code (`bundle.py`), the
lock of its dependencies (`lock.py`), and the manifest of its tasks, made by importing them
from the bundle itself (`index.py`); a release (`release.py`) is the three together, what
`conveyor deploy` and the MCP deploy tool upload. Nothing here talks to a server."""

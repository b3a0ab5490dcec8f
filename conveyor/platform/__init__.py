"""Assemblies of the layers into runnable processes: `dev` (everything in one process on
SQLite, the worker reaching the engine through `link`), `server`, `worker`. This is the only
package that wires engine, server, dashboard and worker together."""

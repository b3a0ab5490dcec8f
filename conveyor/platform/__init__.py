"""Assemblies of the layers into runnable processes: `dev` (everything in one process on
SQLite). This is the only package that wires engine, server and worker together."""

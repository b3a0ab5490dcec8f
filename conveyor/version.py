"""The package's version, in a module of its own so any layer can name it without importing
the public surface (and through it every layer)."""

__version__ = "0.1.0"

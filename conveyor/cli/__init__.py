"""The `conveyor` command line: one module per command group, wired together in `main`.

    conveyor init | dev | trigger | runs list|show|logs|cancel|replay

The console script is `conveyor.cli.main:main`. Commands read arguments, call the Client
(or the dev platform) and render with `conveyor.cli.output`; they hold no platform logic.
"""

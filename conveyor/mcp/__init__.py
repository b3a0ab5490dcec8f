"""Conveyor for AI coding assistants: the MCP server and what installs Conveyor into assistants.

    server.py, access.py,   `conveyor mcp`: the MCP server (needs the `mcp` extra)
      answers.py, tools/
    docs.py                 offline search over the docs shipped in the package
    install/                `conveyor install-mcp`, `install-rules`, `install-skills`
    content/                the rules and skills text, stamped with the version

Only server.py, answers.py and tools/ import the MCP SDK; installing configs, rules and skills
works without it. The server reaches Conveyor through the Client alone, never the engine.
"""

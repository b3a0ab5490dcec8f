"""Installing Conveyor into AI coding assistants, without the MCP SDK:

clients.py     every supported client: where its MCP config lives per OS and scope, its shape
configfile.py  read, merge and write those files (JSON with comments, TOML), with backups
managed.py     files and marked regions Conveyor owns and updates in place
rules.py       `conveyor install-rules`: CLAUDE.md, AGENTS.md, Cursor, Windsurf, Copilot, Cline
skills.py      `conveyor install-skills`: Agent Skills for Claude Code and .agents/skills
"""

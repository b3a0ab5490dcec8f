"""The changelog agent example's own code: reading a repository's history, the prompt, and the
call to Claude through the claude-agent-sdk. The Conveyor task lives in ../tasks/."""

"""`conveyor.testing`: test a project's tasks. `conveyor.testing.platform` starts real platforms
in subprocesses (`conveyor dev`, or a server and workers) for end-to-end tests."""

"""Entry points and process wiring: the CLI, `serve`, `analyze`, workers, policy commands."""

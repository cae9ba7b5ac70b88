"""The qres command line: one module per command group, assembled in flows.cli.app."""

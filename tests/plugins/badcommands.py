"""A fixture plugin whose ``register_commands`` raises after adding a sub-command."""

from harness import hookimpl


@hookimpl
def register_commands(subparsers):
    subparsers.add_parser("half-added", help="added before the hook raised")
    raise ValueError("this fixture plugin's command hook fails on purpose")

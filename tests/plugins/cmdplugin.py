"""A fixture plugin adding a sub-command whose name sorts before every core command."""

from harness import hookimpl


@hookimpl
def register_commands(subparsers):
    subparsers.add_parser("aaa", help="a plugin's command").set_defaults(func=lambda args: 0)

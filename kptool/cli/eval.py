"""`kptool eval` sub-commands (being written)."""

import typer

app = typer.Typer(help="eval", no_args_is_help=True)

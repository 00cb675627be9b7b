"""`kptool prepare` sub-commands (being written)."""

import typer

app = typer.Typer(help="prepare", no_args_is_help=True)

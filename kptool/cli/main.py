"""Entry point of the ``kptool`` command."""

from __future__ import annotations

import sys

import typer

from kptool import __version__
from kptool.cli import (detect, embed_db, eval as eval_cmd, eval_images, features, info, listing, prepare,
                        reconstruction, register, render, svm, train, transfer, viewpoint)
from kptool.cli.common import State, console, error_line
from kptool.errors import KptoolError

app = typer.Typer(
    name="kptool",
    help="Unsupervised 3D semantic keypoints: prepare data, train detectors, detect keypoints, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(prepare.app, name="prepare")
app.add_typer(eval_cmd.app, name="eval")
eval_cmd.app.command("svm")(svm.svm)
eval_cmd.app.command("viewpoint")(viewpoint.eval_viewpoint)
eval_cmd.app.command("pck")(eval_images.pck)
eval_cmd.app.command("transfer-stages")(eval_images.transfer_stages)
eval_cmd.app.command("reconstruction")(reconstruction.reconstruction)
app.command("train")(train.train)
app.command("export-weights")(train.export_weights)
app.command("detect")(detect.detect)
app.command("embed-db")(embed_db.embed_db)
app.command("features")(features.features)
app.command("register")(register.register)
app.command("info")(info.info)
app.command("list")(listing.list_entries)
app.command("render")(render.render)
app.command("refine-camera")(render.refine_camera)
app.command("transfer")(transfer.transfer)


def _version(value: bool) -> None:
    if value:
        print(f"kptool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    State.debug = debug


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # Without standalone mode click returns typer.Exit codes instead of raising them.
        rc = app(args=argv, standalone_mode=False)
    except KptoolError as e:
        if debug:
            raise
        error_line(str(e))
        return 2
    except KeyboardInterrupt:
        console.print("interrupted", highlight=False)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        console.print("aborted", highlight=False)
        return 130
    except typer.TyperException as e:  # usage errors: typer's (vendored click's) exception family
        if debug:
            raise
        return _usage_error(e)
    except Exception as e:
        if debug:
            raise
        error_line(f"{e.__class__.__name__}: {e} (run with --debug for the traceback)")
        return 1
    return rc if isinstance(rc, int) else 0


def _usage_error(e: typer.TyperException) -> int:
    """One ``error:`` line (with a pointer to --help) for a usage error; the help itself without arguments."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":   # `kptool` or `kptool prepare` alone: the help is the message
        if e.format_message():   # typer's rich help has already printed itself
            console.print(e.format_message(), highlight=False, markup=False, soft_wrap=True)
        return e.exit_code
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    error_line(f"{e.format_message()}{hint}")
    return e.exit_code


if __name__ == "__main__":
    sys.exit(main())

"""The `govstream` command line: one command per concern, tables for people, --json for machines.

Errors never end in a traceback: a bad argument or setting prints one line and exits 2,
a failure of the system (a service down, a broken stack) prints one line and exits 1.
"""

from __future__ import annotations

import sys

import pydantic
import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as click_exc  # type: ignore[no-redef]

from pipelines.cli import db as db_cli
from pipelines.cli import stack as stack_cli
from pipelines.cli import topic as topic_cli
from pipelines.cli.classify import classify as classify_command
from pipelines.cli.classify import classify_eval, classify_train
from pipelines.cli.deadletters import dead_letters as dead_letters_command
from pipelines.cli.demo import demo as demo_command
from pipelines.cli.lag import lag as lag_command
from pipelines.cli.monitor import monitor as monitor_command
from pipelines.cli.produce import produce as produce_command
from pipelines.cli.replay import replay as replay_command
from pipelines.cli.simulate import simulate as simulate_command
from pipelines.cli.worker import worker as worker_command
from pipelines.errors import ConfigError, GovstreamError

app = typer.Typer(
    name="govstream",
    help="Event pipeline for grassroots governance: reports, forms and warnings into ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"govstream {version('govstream')}")
        except PackageNotFoundError:  # running from a tree that is not installed
            print("govstream (not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Event pipeline for grassroots governance: reports, forms and warnings into ClickHouse."""


app.add_typer(stack_cli.app, name="stack")
app.add_typer(db_cli.app, name="db")
app.add_typer(topic_cli.app, name="topic")
app.command(name="classify")(classify_command)
app.command(name="classify-eval")(classify_eval)  # also `govstream classify eval` (main)
app.command(name="classify-train")(classify_train)  # also `govstream classify train`
app.command(name="dead-letters")(dead_letters_command)
app.command(name="lag")(lag_command)
app.command(name="monitor")(monitor_command)
app.command(name="produce")(produce_command)
app.command(name="demo")(demo_command)
app.command(name="replay")(replay_command)
app.command(name="simulate")(simulate_command)
app.command(name="worker")(worker_command)


def _fail(message: str, code: int) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "error"
    print(f"govstream: error: {first}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["classify"] and args[1:2] in (["eval"], ["train"]):
        args = [f"classify-{args[1]}", *args[2:]]  # `classify eval F` -> `classify-eval F`
    argv = args
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="govstream", standalone_mode=False)
    except click_exc.NoArgsIsHelpError:  # typer has printed the help
        return 2
    except click_exc.UsageError as exc:
        return _fail(exc.format_message(), 2)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return _fail("aborted", 130)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        return _fail(f"invalid setting GOVSTREAM_{field.upper()}: {message}", 2)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except GovstreamError as exc:
        return _fail(str(exc), 1)
    except click_exc.ClickException as exc:
        return _fail(exc.format_message(), 1)
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())

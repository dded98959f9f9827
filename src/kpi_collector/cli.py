"""The `kpi` command: a thin layer over the library that prints and sets exit codes.

Exit codes: 0 all went well, 1 something failed at run time, 2 the config or the command
line is wrong (nothing ran). Commands of other parts live in their own modules and are
loaded only when called, so `kpi --help` stays fast.
"""

from __future__ import annotations

import sys
from importlib import import_module

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention for a process stopped by a signal

#: command name -> "module:function"; each module imports only click at the top
COMMANDS = {
    "init": "kpi_collector.commands.core:init",
    "validate": "kpi_collector.commands.core:validate",
    "run": "kpi_collector.commands.core:run",
    "history": "kpi_collector.commands.core:history",
    "backfill": "kpi_collector.commands.core:backfill",
    "demo": "kpi_collector.commands.demo:demo",
    "serve": "kpi_collector.commands.serve:serve",
    "report": "kpi_collector.commands.report:report",
    "deliver": "kpi_collector.commands.deliver:deliver",
    "schedule": "kpi_collector.commands.schedule:schedule",
    "alerts": "kpi_collector.commands.alerts:alerts",
    "annotate": "kpi_collector.commands.annotate:annotate",
    "probe": "kpi_collector.commands.probe:probe",
    "schema": "kpi_collector.commands.core:schema",
    "worker": "kpi_collector.commands.worker:worker",
    "workers": "kpi_collector.commands.worker:workers",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            import difflib  # only for a wrong name

            close = difflib.get_close_matches(name, COMMANDS, n=1)
            if close:
                ctx.fail(f"No such command {name!r}; did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, name = target.partition(":")
        command: click.Command = getattr(import_module(module), name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config",
    metavar="PATH",
    envvar="KPI_CONFIG",
    help="Config file (default: ./kpi.yaml, or $KPI_CONFIG).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Say what happens: requests, retries, login steps, how each metric was read.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and what was asked for.")
@click.version_option(package_name="kpi-collector", prog_name="kpi")
@click.pass_context
def group(ctx: click.Context, config: str | None, verbose: bool, quiet: bool) -> None:
    """Collect KPIs on a schedule, keep their history, show and push them.

    The log level is also read from $KPI_LOG_LEVEL (debug, info, warning, error);
    -v and -q win over it.
    """
    if verbose and quiet:
        from kpi_collector.commands.core import UsageProblem

        raise UsageProblem("use one of -v and -q")
    ctx.obj = {**(ctx.obj or {}), "config": config, "quiet": quiet}
    from kpi_collector.commands.logs import setup_logging

    setup_logging(verbose=verbose, quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    """Entry point: library errors become one clear line and an exit code.

    Called without `argv` (as the `kpi` program), it also tunes the process for a short
    life: fewer garbage collections while thousands of small objects are made, and no
    interpreter teardown once the output is flushed and every write is committed.
    """
    as_program = argv is None
    if as_program:
        import gc

        gc.set_threshold(10_000, 50, 100)
    code = run_command(argv, exits=as_program)
    if as_program:
        import logging
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        _save_coverage()
        os._exit(code)
    return code


def _save_coverage() -> None:
    """`os._exit` skips atexit hooks: save coverage's data where `make coverage` measures
    this process (coverage's subprocess support started it; nothing happens otherwise)."""
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is not None:
        current.stop()
        current.save()


def run_command(argv: list[str] | None, *, exits: bool = False) -> int:
    """Run one command; the exit code: 0 ok, 1 failed at run time, 2 config or usage error.

    `exits`: the process ends right after the command (the `kpi` program), so a command may
    leave behind what only a longer life would need to clean (`kpi run` leaves the cyclic
    garbage collector off: turning it back on scans every object the run made)."""
    from kpi_collector.errors import ConfigError, KpiError

    as_json = _asks_json(sys.argv[1:] if argv is None else argv)

    def fail(code: int, prefix: str, message: str) -> int:
        """Say `message` on stderr, one `prefix`ed line per line; with `--format json`, a
        document on stdout too, so that a script reading it finds one."""
        for line in message.splitlines() or [""]:
            click.echo(f"{prefix}{line}", err=True)
        if as_json:
            import json

            document = {"ok": False, "exit_code": code, "error": message}
            click.echo(json.dumps(document, ensure_ascii=False))
        return code

    try:
        result = group.main(args=argv, prog_name="kpi", standalone_mode=False, obj={"exits": exits})
        return result if isinstance(result, int) else EXIT_OK
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED if exc.code else EXIT_OK
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            # click turns Ctrl-C (and `kpi schedule`'s second SIGTERM) into Abort: 128 + SIGINT
            return fail(EXIT_INTERRUPTED, "", "interrupted")
        return fail(EXIT_FAILED, "", "aborted")
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `kpi`: the help, as asked
            exc.show()
            return EXIT_USAGE
        # one line, as the project's own usage errors (click prints usage, a hint, a blank
        # line and then the error)
        path = (
            exc.ctx.command_path
            if exc.ctx is not None
            else _command_path(sys.argv[1:] if argv is None else argv)
        )
        # a wrong value's message says what is allowed; a wrong name points at the help
        hint = "" if isinstance(exc, click.BadParameter) else f" (see '{path} --help')"
        return fail(EXIT_USAGE, "Error: ", f"{exc.format_message()}{hint}")
    except click.ClickException as exc:
        return fail(exc.exit_code, "Error: ", exc.format_message())
    except ConfigError as exc:
        from kpi_collector.secrets import redact  # pydantic: only when there is an error

        return fail(EXIT_USAGE, "config error: ", redact(str(exc)))
    except KpiError as exc:
        from kpi_collector.secrets import redact

        return fail(EXIT_FAILED, "error: ", redact(str(exc)))
    except OSError as exc:  # a file or folder we were told to use cannot be used
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(EXIT_FAILED, "error: ", f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "", "interrupted")
    except ModuleNotFoundError as exc:
        from kpi_collector.errors import missing_package

        message = missing_package(exc)
        if message is None:
            raise
        return fail(EXIT_FAILED, "error: ", message)


def _command_path(argv: list[str]) -> str:
    """`kpi history`, `kpi alerts list`: the command a command line names, for the help to
    point at when click's error carries no context (an option's value missing)."""
    path = ["kpi"]
    group_: click.Command | None = group
    ctx = click.Context(group, info_name="kpi")
    takes_value = {"-c", "--config"}  # the group's options that take a value
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        if word in takes_value:
            next(words, None)
            continue
        if word.startswith("-"):
            continue
        if not isinstance(group_, click.Group):
            break
        command = group_.get_command(ctx, word)
        if command is None:
            break
        path.append(word)
        group_, takes_value = command, set()
    return " ".join(path)


def _asks_json(argv: list[str]) -> bool:
    """Whether the command line asks for `--format json` (before a `--`)."""
    for index, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg == "--format=json" or (
            arg == "--format" and argv[index + 1 : index + 2] == ["json"]
        ):
            return True
    return False

"""What the three programs' command lines share: one-line errors, a checked listen and the
garbage collector's setting for a long run.

Every mistake is one line on stderr and a non-zero exit status, never a traceback::

    error: CODE: message (hint)

* a :class:`~kiosk.errors.KioskError` from anywhere below: exit status 1;
* a usage mistake click finds (a missing option, a bad choice, an unknown
  command): ``VALIDATION_ERROR``, exit status 2;
* the disk full (SQLite's ``database or disk is full``, ``ENOSPC``): ``STORAGE_FULL``, 1;
* anything else: ``INTERNAL_ERROR``, exit status 1 (``KIOSK_DEBUG=1`` shows the traceback);
* Ctrl-C: exit status 130, quietly.
"""

from __future__ import annotations

import errno
import gc
import os
import sqlite3
import sys

import click

from .errors import AddressInUse, ConfigError, KioskError, StorageFull

#: the collector's thresholds for a serving process (Python's are 700, 10, 10)
GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    """For a process that serves or syncs for long: what start-up made (modules, the app, its
    configuration) is collected once and then left out of every later collection
    (``gc.freeze``), and the young generation is collected after 20,000 new objects instead of
    700.  A push of 500 entries makes tens of thousands of short-lived dicts and lists, which
    reference counting frees; at Python's thresholds the collector still walked the young
    generation after every 700 of them and the whole heap after every 70,000: 6 % of the
    cloud's busy samples in a drain (bench/README.md).  A cycle is still collected, at most
    20,000 allocations later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def one_line(err: KioskError) -> str:
    """``error: CODE: message (hint)`` on one line (a hint the message already says is left out)."""
    message = " ".join(str(err.message).split())
    hint = " ".join(err.hint.split()) if err.hint else ""
    tail = f" ({hint})" if hint and hint not in message else ""
    return f"error: {err.code}: {message}{tail}"


def as_kiosk_error(exc: BaseException) -> KioskError | None:
    """The vocabulary's word for an exception from below the library, if it has one."""
    if isinstance(exc, KioskError):
        return exc
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return StorageFull(f"the disk is full: {exc}", {"reason": str(exc)})
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"the disk is full: {exc.strerror}: {exc.filename}", {"reason": str(exc)})
    return None


class ErrorGroup(click.Group):
    """A click group whose every failure is one line (see the module docstring)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as e:  # a bare group: its help is the answer
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else (prog_name or self.name)
            click.echo(one_line(KioskError(e.format_message(), code="VALIDATION_ERROR",
                                           hint=f"see `{where} --help`")), err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(one_line(KioskError(e.format_message(), code="VALIDATION_ERROR")), err=True)
            sys.exit(e.exit_code)
        except Exception as e:
            known = as_kiosk_error(e)
            if known is None and os.environ.get("KIOSK_DEBUG"):
                raise
            if known is None:
                what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                known = KioskError(f"unexpected {what}", code="INTERNAL_ERROR")
            click.echo(one_line(known), err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def create_server(app, *, host: str, port: int, threads: int, ident: str, **kw):
    """A waitress server already listening on ``host:port``, or ADDRESS_IN_USE / CONFIG_ERROR.

    Binding happens here, before anything says "serving" or starts a thread, so a port
    that is taken is an error at once and nothing is left half started.
    """
    import waitress.server

    try:
        return waitress.server.create_server(app, host=host, port=port, threads=threads, ident=ident, **kw)
    except OSError as e:
        where = f"{host}:{port}"
        if e.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{where} is already in use by another process",
                               {"host": host, "port": port}) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"may not listen on {where}: {e.strerror}", {"key": "server.port"},
                              hint="ports below 1024 need privileges; use a port above 1024") from None
        raise ConfigError(f"cannot listen on {where}: {e.strerror or e}", {"key": "server.host"},
                          hint="use an address of this machine, e.g. 127.0.0.1") from None


#: how often the serving loop looks whether a signal asked it to stop
STOP_POLL_SECONDS = 0.2
#: how long a stop waits for the requests being served (a live feed is cut off after it)
STOP_GRACE_SECONDS = 5.0


def serve_until_signal(server, log, name: str, *, on_stop=None) -> str:
    """Serve on ``server`` (from :func:`create_server`) until SIGTERM or SIGINT (any mix, any
    number), then stop within about :data:`STOP_GRACE_SECONDS`, logging ``"<name> stopping"``
    once; returns the signal's name.

    The handlers only record the signal; this loop runs waitress's event loop a round at a
    time (at most :data:`STOP_POLL_SECONDS` each) and looks after every round.  Waitress's own
    ``run()`` stops on an exception a handler raises (``SystemExit``, ``KeyboardInterrupt``),
    but a second signal right behind the first (Ctrl-C to the process group plus a SIGTERM)
    raised again inside the stop itself: a traceback, the camera not stopped.  ``on_stop``
    runs after the listening socket is closed, before the wait for the running requests.
    """
    import signal

    from waitress import wasyncore

    caught: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    socket_map = server.map if hasattr(server, "map") else server._map
    use_poll = server.adj.asyncore_use_poll
    try:
        while not caught:
            wasyncore.loop(timeout=STOP_POLL_SECONDS, map=socket_map, use_poll=use_poll, count=1)
        which = signal.Signals(caught[0]).name
        log.info(f"{name} stopping", extra={"signal": which})
    finally:
        # stop listening first, then give the requests in flight their grace; only the
        # listening socket closes (the server's own close() also closes the trigger a request
        # still being served pulls when its answer is ready: EBADF in that request's thread)
        for d in list(socket_map.values()):
            if getattr(d, "accepting", False):
                wasyncore.dispatcher.close(d)
        try:
            if on_stop is not None:
                on_stop()
        finally:
            server.task_dispatcher.shutdown(timeout=STOP_GRACE_SECONDS)
    log.info(f"{name} stopped")
    return which


def guest_export_options(f):
    """The options of ``kiosk guest export`` and ``kiosk-cloud guest export``."""
    f = click.option("--output", type=click.Path(dir_okay=False), default=None,
                     help="Write the document to FILE (mode 0600, atomically) instead of standard output.")(f)
    f = click.option("--confirmation", required=True, help="The reservation's confirmation number.")(f)
    return click.option("--hotel", required=True, help="The guest's hotel.")(f)


def write_guest_export(doc: dict, output: str | None, counted: tuple[str, ...]) -> None:
    """A guest export (a kiosk's or the cloud's): to standard output, or to ``output`` (0600,
    atomically) with one JSON line saying where and how many of each of ``counted``."""
    import json
    from pathlib import Path

    from .files import write_private

    if output is None:  # escaped: a terminal acts on no control or direction character in it
        click.echo(json.dumps(doc, indent=2))
        return
    write_private(Path(output), (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    click.echo(json.dumps({"output": output, "hotelId": doc["hotelId"], "confirmation": doc["confirmation"],
                           **{k: len(doc[k]) for k in counted}}))

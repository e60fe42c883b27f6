"""The ``kiosk-agent`` command: a thin click layer over agent/ and sync/.

Scripts depend on these forms::

    kiosk-agent [--data-dir DIR] link --cloud URL --device-id ID --credential CRED
    kiosk-agent [--data-dir DIR] run
    kiosk-agent [--data-dir DIR] status [--json]
    kiosk-agent [--data-dir DIR] sync --once
    kiosk-agent [--data-dir DIR] resync [--hotel H]
    kiosk-agent [--data-dir DIR] dead list [--json] | dead retry ID | dead drop ID
"""

from __future__ import annotations

import json
import logging
import os
import sys

import click

from kiosk import logs, outbox, sync_status
from kiosk.cli import Ctx, KioskGroup
from kiosk.cliutil import tune_gc
from kiosk.clock import iso
from kiosk.files import private_umask
from sync import delivery
from sync import pull as pull_mod

from . import link as link_mod
from .clients import puller_for, pusher_for, transport_for

__all__ = ["main", "puller_for", "pusher_for", "transport_for"]


@click.group(cls=KioskGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="KIOSK_CONFIG",
              help="YAML config file (default: embedded defaults).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="KIOSK_DATA_DIR",
              help="The kiosk instance's data directory.")
@click.pass_context
def main(ctx, config_path, data_dir):
    """Sync agent: delivers the kiosk's outbox to the cloud."""
    private_umask(ctx)  # what it creates is this user's only, whatever the umask
    ctx.obj = Ctx(config_path, data_dir)


@main.command()
@click.option("--cloud", required=True, help="The cloud's base URL (https://…; http only to localhost).")
@click.option("--device-id", required=True, help="This kiosk's device id in the cloud.")
@click.option("--credential", required=True, help="The credential `kiosk-cloud device add` printed.")
@click.pass_obj
def link(obj: Ctx, cloud, device_id, credential):
    """Link this kiosk to a cloud (stored in DATA_DIR/keys/cloud.json, mode 0600)."""
    inst = obj.initialised()
    click.echo(json.dumps(link_mod.save(inst.root, cloud=cloud, device_id=device_id, credential=credential)))


@main.command()
@click.pass_obj
def run(obj: Ctx):
    """Run the agent until SIGTERM."""
    from .runner import Agent

    inst = obj.initialised()
    transport, link_info = transport_for(inst)  # not linked: NOT_INITIALISED before anything is written
    logs.configure(inst.config.log.level, inst.log_dir)
    inst.connect().conn.close()  # migrations, before the jobs start
    tune_gc()  # start-up's objects out of the collector's way (kiosk.cliutil)
    if not Agent(inst, transport, device_id=link_info["deviceId"]).run():
        # a job overran the stop's grace: end now rather than wait for its thread at exit
        logging.shutdown()
        os._exit(0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object (for scripts and monitoring).")
@click.pass_obj
def status(obj: Ctx, as_json):
    """Backlog, dead letters, last successful push, and whether the cloud answers."""
    inst = obj.initialised()
    now = inst.clock.now()
    info = delivery.backlog(inst.connect(), now)
    try:
        transport, link_info = transport_for(inst)
        health = transport.health()
        info |= {"cloud": link_info["url"], "deviceId": link_info["deviceId"],
                 "cloudReachable": health["reachable"]}
        # asked now: the cloud's answer outranks what the agent recorded; unreachable: the record
        if health.get("credential") == "refused":
            info |= {"credential": "refused",
                     "credentialError": info["credentialError"] or f"HTTP {health.get('status')}"}
        elif health.get("credential") == "ok":
            info |= {"credential": "ok", "credentialError": None}
    except Exception as e:  # not linked: still show the backlog
        info |= {"cloud": None, "cloudReachable": False, "linkError": getattr(e, "message", str(e))}
    if info["credential"] == "refused":
        info["hint"] = sync_status.REFUSED_HINT
    if as_json:
        click.echo(json.dumps(info))
        return
    last = info["lastSuccessfulPushAt"]
    answer = ("CREDENTIAL REFUSED" if info["credential"] == "refused" else
              "answers" if info["cloudReachable"] else "not reachable")
    click.echo(f"cloud:            {info['cloud'] or 'not linked'} ({answer})")
    if info["credential"] == "refused":
        click.echo(f"credential:       refused by the cloud ({info['credentialError']})")
        click.echo(f"                  do: {sync_status.REFUSED_HINT.split(': ', 1)[1]}")
    click.echo(f"pending:          {info['pending']}")
    age = info["oldestPendingAgeSeconds"]
    click.echo(f"oldest pending:   {'-' if age is None else f'{age:.1f} s'}")
    click.echo(f"dead letters:     {info['dead']}")
    click.echo(f"last good push:   {iso(last) if last else 'never'}")
    heard = info["lastHeardAt"]
    click.echo(f"last heard:       {iso(heard) if heard else 'never'} (a successful push or pull)")
    if info.get("lastError"):
        click.echo(f"last error:       {info['lastError']}")


@main.command()
@click.option("--once", is_flag=True, required=True, help="Drain what is due, then exit.")
@click.pass_obj
def sync(obj: Ctx, once):
    """Push the outbox, then pull the cloud's changes, once, with progress bars; exit 1 if the
    cloud could not be reached."""
    inst = obj.initialised()
    pusher = pusher_for(inst)
    todo = delivery.backlog(pusher.db, inst.clock.now())["pending"]
    tune_gc()  # a backlog of 100,000 entries makes millions of short-lived objects
    err = sys.stderr
    with click.progressbar(length=todo, label="pushing", file=err) as bar:
        total = pusher.drain(on_batch=lambda r: bar.update(r.sent))
    pulled = None
    if not total.error:
        with click.progressbar(length=0, label="pulling", file=err, show_pos=True) as bar:
            pulled = puller_for(inst, pusher.transport).pull(on_page=bar.update)
    error = total.error or (pulled.error if pulled else None)
    click.echo(json.dumps({"sent": total.sent, "applied": total.applied, "duplicate": total.duplicate,
                           "rejected": total.rejected, "retried": total.retried, "conflicts": total.conflicts,
                           "pulled": pulled.changes if pulled else 0,
                           "replays": pulled.replays if pulled else [], "error": error}))
    if error:
        raise SystemExit(1)


@main.command()
@click.option("--hotel", "hotels", multiple=True, help="Only this hotel (repeatable; default: every hotel).")
@click.pass_obj
def resync(obj: Ctx, hotels):
    """Re-sync from the cloud's snapshot of each hotel's current state, then pull on from there (what
    the agent does by itself when the cloud answers CURSOR_EXPIRED).  The outbox is kept; exit 1 if
    the cloud could not be reached."""
    inst = obj.initialised()
    puller = puller_for(inst)
    out, error = {}, None
    for hotel in hotels or puller.hotels:
        try:
            r = puller.resync(hotel)
        except pull_mod.TransportError as e:
            error = e.reason
            break
        out[hotel] = {"pages": r.pages, "changes": r.changes, "removed": r.removed, "cursor": r.cursor}
    pulled = puller.pull() if error is None else None
    error = error or (pulled.error if pulled else None)
    click.echo(json.dumps({"hotels": out, "pulled": pulled.changes if pulled else 0, "error": error}))
    if error:
        raise SystemExit(1)


@main.group()
def dead():
    """Dead letters: entries the cloud rejected for good."""


@dead.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def dead_list(obj: Ctx, as_json):
    """Dead entries of this kiosk's hotels with the cloud's reason, oldest first."""
    inst = obj.initialised()
    for r in outbox.list_dead(inst.connect(), list(inst.config.property.hotels)):
        click.echo(json.dumps(r) if as_json else
                   f"{r['id']:>8}  {r['hotel_id']:<10} {r['kind']:<20} {r['entity_id']:<16} {r['last_error']}")


@dead.command("retry")
@click.argument("entry_id", type=int)
@click.pass_obj
def dead_retry(obj: Ctx, entry_id):
    """Put dead entry ENTRY_ID back in the queue (after fixing what the cloud refused)."""
    inst = obj.initialised()
    click.echo(json.dumps(outbox.resolve_dead(inst.connect(), entry_id, "retry",
                                                hotels=list(inst.config.property.hotels), by="cli",
                                                now=inst.clock.now())))


@dead.command("drop")
@click.argument("entry_id", type=int)
@click.pass_obj
def dead_drop(obj: Ctx, entry_id):
    """Give up on dead entry ENTRY_ID for good (kept, marked dropped, audited)."""
    inst = obj.initialised()
    click.echo(json.dumps(outbox.resolve_dead(inst.connect(), entry_id, "drop",
                                                hotels=list(inst.config.property.hotels), by="cli",
                                                now=inst.clock.now())))

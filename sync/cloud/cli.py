"""The ``kiosk-cloud`` command: a thin click layer over the reference cloud.

Scripts depend on these forms::

    kiosk-cloud serve --data-dir DIR [--port 8090] [--host 127.0.0.1]
    kiosk-cloud device add KIOSK_ID --hotel H [--hotel H2] [--rotate] --data-dir DIR   (prints only the credential)
    kiosk-cloud device revoke KIOSK_ID --data-dir DIR
    kiosk-cloud device list --data-dir DIR
    kiosk-cloud tickets --hotel H --json --data-dir DIR                      (a JSON array)
    kiosk-cloud work-orders --hotel H --json --data-dir DIR                  (a JSON array, with history)
    kiosk-cloud pms link --hotel H --kind opera|cloudbeds --url URL --pms-hotel CODE --credentials FILE
    kiosk-cloud pms status --hotel H [--json]        kiosk-cloud pms unlink --hotel H
    kiosk-cloud link --cloud URL --device-id ID --credential CRED   (a property hub: relay to the chain)
    kiosk-cloud upstream [--json]                    (the hub's link and what waits for the chain)
    kiosk-cloud audit verify --hotel H [--json]      (kiosks' audit checkpoints; exit 1 on a break)
    kiosk-cloud guest export --hotel H --confirmation C [--output FILE]   (one guest's data, JSON)
    kiosk-cloud guest erase --hotel H --confirmation C --yes     (erase one guest; prints counts)
    kiosk-cloud purge [--retention 30d] [--privacy-retention 30d|off]   (prints counts)

``--data-dir`` goes before or after the subcommand; default ``$KIOSK_CLOUD_DATA_DIR``
or ``var/cloud``.  ``--database postgresql://user@host:5432/cloud`` (or
``$KIOSK_CLOUD_DATABASE``), before or after the subcommand, keeps the data in PostgreSQL
instead of ``DATA_DIR/cloud.db``; ``serve --workers N`` then runs N worker processes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import click

from kiosk import logs
from kiosk.cliutil import (
    ErrorGroup,
    create_server,
    guest_export_options,
    serve_until_signal,
    tune_gc,
    write_guest_export,
)
from kiosk.clock import SystemClock, parse_duration
from kiosk.errors import KioskError
from kiosk.files import private_umask

from . import (
    changelog,
    devices,
    fleet,
    guest_data,
    guest_retention,
    guest_sealing,
    keys,
    planner_stats,
    pms_links,
    pms_outbox,
    quota,
    refdata,
    relay_outbox,
    retention,
    storage,
    tickets,
    upstream,
    workorders,
)

DEFAULT_DATA_DIR = "var/cloud"


class CloudGroup(ErrorGroup):
    """Every failure below is one line, ``error: CODE: message (hint)``, and a non-zero exit."""


def data_dir_option(f):
    """``--data-dir`` and ``--database`` after the subcommand; they fall back to the group's
    (environment, default)."""
    def remember(key):
        def cb(ctx, _param, value):
            if value is not None:
                ctx.find_root().meta[key] = value
            return value
        return cb
    f = click.option("--database", callback=remember("cloud.database"), expose_value=False, is_eager=True,
                     help="A postgresql:// URL: keep the data there instead of DATA_DIR/cloud.db.")(f)
    return click.option("--data-dir", type=click.Path(file_okay=False), callback=remember("cloud.data_dir"),
                        expose_value=False, is_eager=True, help="The cloud's data directory (holds cloud.db).")(f)


def data_dir() -> Path:
    return Path(click.get_current_context().find_root().meta["cloud.data_dir"])


def database() -> str | None:
    return click.get_current_context().find_root().meta.get("cloud.database")


def open_db():
    """The command's connection; its storage (PostgreSQL: a pool and its threads) closed when
    the command ends, not left to the collector (which would meet it on one of the pool's own
    threads: "cannot join current thread")."""
    st = storage.open_storage(data_dir(), database())
    click.get_current_context().find_root().call_on_close(st.close)
    st.prepare()
    return st.connect()


@click.group(cls=CloudGroup)
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="KIOSK_CLOUD_DATA_DIR",
              default=DEFAULT_DATA_DIR, show_default=True, help="The cloud's data directory (holds cloud.db).")
@click.option("--database", envvar="KIOSK_CLOUD_DATABASE", default=None,
              help="A postgresql:// URL: keep the data there instead of DATA_DIR/cloud.db.")
@click.pass_context
def main(ctx, data_dir, database):
    """Reference cloud for the kiosk sync protocol (docs/sync-protocol.md)."""
    private_umask(ctx)  # cloud.db and its logs: this user's only, whatever the umask
    ctx.meta.setdefault("cloud.data_dir", data_dir)
    if database:
        ctx.meta.setdefault("cloud.database", database)


def _duration(text: str, option: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise KioskError(f"{option}: {e}", {"field": option.lstrip("-")}, code="VALIDATION_ERROR") from None


def retention_option(f):
    return click.option("--retention", "retention_", default="30d", show_default=True,
                        envvar="KIOSK_CLOUD_RETENTION",
                        help="Keep the change log and idempotency keys this long (at least the longest a"
                             " kiosk may be offline; older cursors get CURSOR_EXPIRED and re-sync).")(f)


def privacy_retention_option(f):
    return click.option("--privacy-retention", "privacy_retention", default=f"{guest_retention.DEFAULT_DAYS}d",
                        show_default=True, envvar="KIOSK_CLOUD_PRIVACY_RETENTION",
                        help="Erase a guest (as `guest erase` does) this long after their reservation's departure"
                             " date: whole days; off: never (docs/privacy.md).")(f)


def privacy_days(text: str) -> int | None:
    """``--privacy-retention`` in days (``off``: None); a whole number of days, at least one."""
    if text.strip().lower() == "off":
        return None
    seconds = _duration(text, "--privacy-retention")
    if seconds % 86400:
        raise KioskError(f"--privacy-retention: {text!r} is not a whole number of days (use e.g. 30d, or off)",
                         {"field": "privacy-retention"}, code="VALIDATION_ERROR")
    return seconds // 86400


#: the fleet-health flags' options (name, default, environment variable, help)
FLEET_OPTIONS = (
    ("silent-after", "15m", "Flag a device silent when not heard from for this long."),
    ("max-pending", "1000", "Flag a device behind when more entries than this wait in its outbox."),
    ("max-backlog-age", "1h", "Flag a device behind when its oldest waiting entry is older than this."),
    ("clock-tolerance", "2m", "Flag a device whose clock is off the cloud's by more than this."),
)


def fleet_options(f):
    """``--fleet-…`` options: when ``fleet`` and the fleet endpoints flag a device."""
    def remember(name):
        def cb(ctx, _param, value):
            ctx.find_root().meta.setdefault("cloud.fleet", {})[name] = value
            return value
        return cb
    for name, default, text in reversed(FLEET_OPTIONS):
        f = click.option(f"--fleet-{name}", default=default, show_default=True, expose_value=False,
                         envvar=f"KIOSK_CLOUD_FLEET_{name.upper().replace('-', '_')}", callback=remember(name),
                         help=text)(f)
    return f


def fleet_policy() -> fleet.Policy:
    given = click.get_current_context().find_root().meta.get("cloud.fleet", {})
    value = {n: d for n, d, _ in FLEET_OPTIONS} | given
    try:
        pending = int(value["max-pending"])
    except ValueError:
        raise KioskError("--fleet-max-pending: not a number", {"field": "fleet-max-pending"},
                         code="VALIDATION_ERROR") from None
    return fleet.Policy(silent_after=_duration(value["silent-after"], "--fleet-silent-after"), max_pending=pending,
                        max_backlog_age=_duration(value["max-backlog-age"], "--fleet-max-backlog-age"),
                        clock_tolerance=_duration(value["clock-tolerance"], "--fleet-clock-tolerance"))


_SIZE = re.compile(r"\s*([0-9]+)\s*(|k|kb|kib|m|mb|mib|g|gb|gib)\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def push_quota(entries: str, size: str, window: str) -> quota.Quota:
    """``--push-quota-entries``/``-bytes``/``-window`` as a :class:`quota.Quota`; ``off`` lifts a
    limit.  A limit below one full push (1,000 entries, 4 MiB) would refuse a kiosk's largest
    batch for ever, so it is refused here."""
    from .validation import MAX_BODY_BYTES, MAX_ENTRIES

    def limit(text: str, option: str, parse, least: int) -> int | None:
        if text.strip().lower() == "off":
            return None
        n = parse(text)
        if n is None or n < least:
            raise KioskError(f"{option}: {text!r} is not a number of at least {least} (or off)",
                             {"field": option.lstrip("-")}, code="VALIDATION_ERROR")
        return n

    def count(text: str) -> int | None:
        return int(text) if text.strip().isascii() and text.strip().isdigit() else None

    def nbytes(text: str) -> int | None:
        m = _SIZE.fullmatch(text)
        return int(m.group(1)) * _UNITS[m.group(2)[:1].lower()] if m else None

    return quota.Quota(entries=limit(entries, "--push-quota-entries", count, MAX_ENTRIES),
                       bytes=limit(size, "--push-quota-bytes", nbytes, MAX_BODY_BYTES),
                       window=_duration(window, "--push-quota-window"))


def quota_options(f):
    """``--push-quota-…``: how much one device may push per window (429 RATE_LIMITED beyond)."""
    f = click.option("--push-quota-window", default="1m", show_default=True, envvar="KIOSK_CLOUD_PUSH_QUOTA_WINDOW",
                     help="The window the push quota counts in.")(f)
    f = click.option("--push-quota-bytes", default="64MiB", show_default=True, envvar="KIOSK_CLOUD_PUSH_QUOTA_BYTES",
                     help="Request bytes one device may push per window (off: no limit); beyond it the push is"
                          " answered 429 RATE_LIMITED with Retry-After.")(f)
    return click.option("--push-quota-entries", default=str(quota.DEFAULT_ENTRIES), show_default=True,
                        envvar="KIOSK_CLOUD_PUSH_QUOTA_ENTRIES",
                        help="Entries one device may push per window (off: no limit); beyond it the push is"
                             " answered 429 RATE_LIMITED with Retry-After.")(f)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8090, show_default=True, help="Port to listen on.")
@click.option("--threads", type=int, default=8, show_default=True, help="Threads per worker process.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes behind the one port (more than 1 needs --database).")
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--max-clock-skew", default="1h", show_default=True, envvar="KIOSK_CLOUD_MAX_CLOCK_SKEW",
              help="Refuse entries stamped further ahead of this server's clock (HLC_AHEAD).")
@retention_option
@privacy_retention_option
@click.option("--purge-every", default="1h", show_default=True, envvar="KIOSK_CLOUD_PURGE_EVERY",
              help="Purge what is older than --retention this often (off: never; run `kiosk-cloud purge`).")
@click.option("--pms-poll", default="60s", show_default=True, envvar="KIOSK_CLOUD_PMS_POLL",
              help="Read linked hotels' reservations from their PMS this often (off: never; the PMS outbox is"
                   " delivered every few seconds either way).")
@quota_options
@fleet_options
@data_dir_option
def serve(host, port, threads, log_level, max_clock_skew, workers, retention_, privacy_retention, purge_every,
          pms_poll, push_quota_entries, push_quota_bytes, push_quota_window):
    """Serve the sync and read API until SIGTERM / Ctrl-C."""
    from .app import create_app

    skew = _duration(max_clock_skew, "--max-clock-skew")
    keep = _duration(retention_, "--retention")
    erase_after = privacy_days(privacy_retention)
    purge_interval = None if purge_every.strip().lower() == "off" else _duration(purge_every, "--purge-every")
    poll = 10 ** 9 if pms_poll.strip().lower() == "off" else _duration(pms_poll, "--pms-poll")
    policy = fleet_policy()
    limits = push_quota(push_quota_entries, push_quota_bytes, push_quota_window)
    root, url = data_dir(), database()
    st = storage.open_storage(root, url)
    if workers > 1 and st.processes == 1:
        raise KioskError("several worker processes need a database they can share: give --database"
                         " postgresql://… (SQLite has one writer)", {"field": "workers"}, code="CONFIG_ERROR")
    logs.configure(log_level, root / "logs")
    log = logging.getLogger("kiosk.cloud")
    if workers > 1:
        from .workers import serve_workers

        st.prepare()  # once, before the workers start
        st.close()  # each worker opens its own pool: none of this one's connections is forked into them
        log.info("serving", extra={"host": host, "port": port, "workers": workers, "database": "postgresql",
                                   "purge": "run `kiosk-cloud purge` from a timer"})
        serve_workers(host=host, port=port, workers=workers, threads=threads, database=url, data_dir=root,
                      max_clock_skew=skew, log_level=log_level, fleet_policy=policy, push_quota=limits,
                      pms_poll=poll)
        return
    app = create_app(root, max_clock_skew=skew, database=url, fleet_policy=policy, pool_size=threads,
                     push_quota=limits)
    from .validation import MAX_BODY_BYTES

    # ADDRESS_IN_USE here; a body past the app's limit is refused as it arrives, never spooled first
    server = create_server(app, host=host, port=port, threads=threads, ident="kiosk-cloud",
                           max_request_body_size=MAX_BODY_BYTES)
    guest_sealing.start(st.connect)  # rows an earlier version stored in clear, sealed once
    if purge_interval:
        retention.Purger(st.connect, SystemClock(), keep, purge_interval).start()
        if erase_after:  # guests erased automatically after their stay (sync/cloud/guest_retention.py)
            guest_retention.Retainer(st.connect, SystemClock(), erase_after, purge_interval).start()
    from .pms_delivery import PmsRunner

    runner = PmsRunner(app.config["CLOUD_STORAGE"], root, SystemClock(), poll=poll)
    runner.start()  # the connectors of linked hotels (one per hotel across workers: a lease)
    from .relay import Relay

    relay = Relay(app.config["CLOUD_STORAGE"], root, SystemClock())
    if st.processes != 1:  # PostgreSQL: the planner's statistics follow young tables (planner_stats.py)
        planner_stats.Keeper(st, SystemClock()).start()
    relay.start()  # a hub (`kiosk-cloud link`): its kiosks' entries up, the chain's changes down
    log.info("serving", extra={"host": host, "port": server.effective_port, "dataDir": str(root)})
    tune_gc()  # start-up's objects out of the collector's way; fewer collections a push
    # until SIGTERM / Ctrl-C (any mix): the handlers only record the signal (kiosk.cliutil)
    serve_until_signal(server, log, "cloud")
    relay.stop()
    runner.stop()


@main.group()
def device():
    """Register kiosks and their credentials."""


@device.command("add")
@click.argument("kiosk_id")
@click.option("--hotel", "hotels", multiple=True, required=True, help="A hotel the kiosk serves (repeatable).")
@click.option("--rotate", is_flag=True,
              help="KIOSK_ID exists: replace its credential (the old one stops working) and its hotels.")
@data_dir_option
def device_add(kiosk_id, hotels, rotate):
    """Register KIOSK_ID; prints only the credential, once.  An existing device is refused
    (its kiosk would be locked out) unless --rotate is given."""
    db = open_db()
    before = devices.exists(db, kiosk_id)
    credential = devices.add_device(db, kiosk_id, list(hotels), SystemClock().now(), rotate=rotate)
    if before == "active":
        click.echo(f"replaced the credential of {kiosk_id}; the old one no longer works: run"
                   " `kiosk-agent link` on the kiosk with this one", err=True)
    elif before == "revoked":
        click.echo(f"{kiosk_id} was revoked; it is active again with this credential", err=True)
    click.echo(credential)


@device.command("revoke")
@click.argument("kiosk_id")
@data_dir_option
def device_revoke(kiosk_id):
    """Stop accepting KIOSK_ID's credential."""
    devices.revoke_device(open_db(), kiosk_id, SystemClock().now())
    click.echo(json.dumps({"deviceId": kiosk_id, "revoked": True}))


@device.command("list")
@data_dir_option
def device_list():
    """Registered devices (one JSON object per line; never the credentials)."""
    for d in devices.list_devices(open_db()):
        click.echo(json.dumps(d))


def _listing(name: str, lister, line):
    @main.command(name, help=f"The {name.replace('-', ' ')} of a hotel, as the cloud holds them.")
    @click.option("--hotel", required=True, help="The hotel to list.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array (the API's objects).")
    @data_dir_option
    def command(hotel, as_json):
        rows = lister(open_db(), hotel)
        if as_json:
            click.echo(json.dumps(rows))
        else:
            for r in rows:
                click.echo(printable(line(r)))
    return command


#: what a terminal would act on: C0 and C1 controls, DEL, lone surrogates, and the
#: direction overrides that make text show other than it reads
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` safe to print to a terminal: every control character (guests type the text of
    tickets, kiosks send it) shown escaped, ``\\x1b`` rather than an escape sequence the
    terminal would run."""
    return _UNPRINTABLE.sub(_escape, text)


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


@main.group()
def key():
    """The cloud's token-signing keys (sent to kiosks as trust-list entries by pull)."""


@key.command("create")
@click.option("--hotel", "hotels", multiple=True, required=True, help="A hotel the key signs for (repeatable).")
@data_dir_option
def key_create(hotels):
    """Create an active signing key; prints its public trust-list entry as JSON."""
    click.echo(json.dumps(keys.create(open_db(), list(hotels), SystemClock().now())))


@key.command("retire")
@click.argument("kid")
@data_dir_option
def key_retire(kid):
    """Retire key KID: kiosks refuse tokens signed with it after their next pull."""
    click.echo(json.dumps(keys.retire(open_db(), kid, SystemClock().now())))


@key.command("list")
@data_dir_option
def key_list():
    """The cloud's keys (public parts), one JSON object per line."""
    for k in keys.list_keys(open_db()):
        click.echo(json.dumps(k))


@main.group()
def token():
    """Tokens issued or revoked centrally."""


@token.command("create")
@click.option("--role", type=click.Choice(["guest", "staff", "admin"]), required=True, help="The token's role.")
@click.option("--hotel", required=True, help="The hotel it is for.")
@click.option("--user", default=None, help="The subject (e.g. a confirmation number or staff id).")
@click.option("--expires-in", default="1d", show_default=True, help="Lifetime: 90s, 15m, 12h, 30d.")
@click.option("--reusable", is_flag=True, help="Reusable instead of one-time.")
@data_dir_option
def token_create(role, hotel, user, expires_in, reusable):
    """Sign a token with the hotel's newest active cloud key; prints only the token."""
    try:
        ttl = parse_duration(expires_in)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--expires-in") from None
    click.echo(keys.sign(open_db(), hotel_id=hotel, role=role, now=SystemClock().now(), ttl_seconds=ttl,
                         user_id=user, reusable=reusable))


@token.command("revoke")
@click.argument("jti")
@click.option("--hotel", required=True, help="The token's hotel.")
@data_dir_option
def token_revoke(jti, hotel):
    """Revoke token JTI: every kiosk of the hotel refuses it after its next pull."""
    click.echo(json.dumps(keys.revoke_token(open_db(), hotel, jti, SystemClock().now())))


@main.group()
def data():
    """Reference data from the PMS, sent to kiosks by pull."""


@data.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--hotel", required=True, help="The hotel the export belongs to.")
@data_dir_option
def data_import(folder, hotel):
    """Import FOLDER (CSV files of a PMS export): rooms, reservations, staff, rate plans, offers,
    assets, tasks and work orders.  All or nothing; prints added/changed/removed/unchanged per
    table as JSON (work orders also count the conflicts their changes made)."""
    if not Path(folder).is_dir():
        raise KioskError(f"no such folder: {folder}", {"folder": folder}, code="NOT_FOUND")
    tables = refdata.read_export(folder)
    n = sum(len(rows) for rows in tables.values())
    with click.progressbar(length=n, label="importing", file=sys.stderr) as bar:
        counts = refdata.import_tables(open_db(), hotel, tables, SystemClock().now(), progress=bar.update)
    click.echo(json.dumps(counts))


@main.command("fleet")
@click.option("--hotel", default=None, help="Only the devices of this hotel (default: every device).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, as GET /v1/fleet answers.")
@fleet_options
@data_dir_option
def fleet_cmd(hotel, as_json):
    """Fleet health: each kiosk's version, backlog, clock and last sync, flagged when silent, behind,
    holding dead letters or off the cloud's clock."""
    overview = fleet.overview(open_db(), [hotel] if hotel else None, fleet_policy(), SystemClock().now())
    if as_json:
        click.echo(json.dumps(overview))
    else:
        click.echo("\n".join(printable(line) for line in fleet.table(overview)))


@main.command("purge")
@retention_option
@privacy_retention_option
@data_dir_option
def purge_cmd(retention_, privacy_retention):
    """Delete change-log rows, entry keys and push answers older than --retention, and erase the
    guests whose stay ended at least --privacy-retention ago (what `serve` does every
    --purge-every); prints what was deleted and erased as JSON."""
    keep = _duration(retention_, "--retention")
    erase_after = privacy_days(privacy_retention)
    db, now = open_db(), SystemClock().now()
    out = retention.purge(db, now, keep)
    out["privacyRetention"] = guest_retention.run(db, now, erase_after) if erase_after else None
    out["sealed"] = guest_sealing.run(db, now)  # guests' fields an earlier version stored in clear
    click.echo(json.dumps(out))


tickets_cmd = _listing("tickets", tickets.list_for_hotel,
                       lambda t: f"{t['ticketId']}  {t['type']:<14} {t['status']:<8} {t['roomNumber'] or '-':<6}"
                                 f" {t['title']}")
work_orders_cmd = _listing("work-orders", workorders.list_for_hotel,
                           lambda w: f"{w['workOrderId']}  {w['status']:<11} v{w['version']:<3}"
                                     f" {w['assignee'] or '-':<10} {len(w['history'])} changes")
conflicts_cmd = _listing("conflicts", changelog.conflicts_for_hotel,
                         lambda c: f"{c['id']:>6}  {c['entityType']:<11} {c['entityId']:<14} {c['field'] or '-':<10}"
                                   f" {c['rule']:<18} {c['outcome']}")
security_cmd = _listing("security-events", changelog.security_events_for_hotel,
                        lambda e: f"{e['id']:>6}  {e['kind']:<14} {e['subject']}")



@main.group()
def pms():
    """Link hotels to their PMS (OPERA Cloud, Cloudbeds): reservations in; charges, service
    requests and room statuses out, exactly once (docs/pms.md)."""


@pms.command("link")
@click.option("--hotel", required=True, help="The hotel (as kiosks name it).")
@click.option("--kind", type=click.Choice(sorted(pms_links.connectors.KINDS)), required=True, help="The PMS.")
@click.option("--url", required=True, help="The PMS API's base URL (OPERA: the OHIP gateway).")
@click.option("--pms-hotel", required=True, help="The hotel's id in the PMS (OPERA hotel code, Cloudbeds property id).")
@click.option("--credentials", "credentials_file", required=True, type=click.Path(dir_okay=False),
              help="A JSON file with the vendor's secrets (OPERA: app_key, client_id, client_secret, username,"
                   " password; Cloudbeds: api_key). Copied 0600 into the data directory; never printed.")
@click.option("--charge-code", default="KIOSK", show_default=True,
              help="The PMS transaction code offers are charged with (set up in the PMS).")
@click.option("--maintenance-code", default="KIOSK", show_default=True,
              help="The PMS maintenance code a room's fault is opened with (OPERA; set up in the PMS).")
@data_dir_option
def pms_link(hotel, kind, url, pms_hotel, credentials_file, charge_code, maintenance_code):
    """Link HOTEL to its PMS; `serve` runs the connector from its next pass."""
    creds = pms_links.read_credentials(credentials_file, kind)
    db = open_db()
    with storage.transaction(db):
        link = pms_links.link(db, data_dir(), hotel, kind=kind, url=url, pms_hotel=pms_hotel, credentials=creds,
                              charge_code=charge_code, maintenance_code=maintenance_code, now=SystemClock().now())
    click.echo(json.dumps({"hotel": link.hotel_id, "kind": link.kind, "url": link.url, "pmsHotel": link.pms_hotel,
                           "chargeCode": link.charge_code, "maintenanceCode": link.maintenance_code,
                           "linked": True}))


@pms.command("unlink")
@click.option("--hotel", required=True)
@data_dir_option
def pms_unlink(hotel):
    """Stop the hotel's connector and forget its secrets (its PMS outbox stays, for the record)."""
    db = open_db()
    with storage.transaction(db):
        pms_links.unlink(db, data_dir(), hotel)
    click.echo(json.dumps({"hotel": hotel, "linked": False}))


@pms.command("retry")
@click.option("--hotel", required=True)
@click.option("--action", "action_id", type=int, required=True, help="The dead action's id (`pms status`).")
@data_dir_option
def pms_retry(hotel, action_id):
    """Send a dead action again (after the hotel fixed what the PMS refused)."""
    db = open_db()
    with storage.transaction(db):
        ok = pms_outbox.requeue(db, hotel, action_id, SystemClock().now())
    if not ok:
        raise KioskError(f"no dead action {action_id} for hotel {hotel}", {"action": action_id}, code="NOT_FOUND")
    click.echo(json.dumps({"hotel": hotel, "action": action_id, "status": "pending"}))


@pms.command("status")
@click.option("--hotel", required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@data_dir_option
def pms_status(hotel, as_json):
    """Linked or not, the last read, the actions waiting, delivered and dead (with the PMS's words)."""
    db = open_db()
    link = pms_links.get(db, hotel)
    n = pms_outbox.counts(db, hotel)
    dead = [a.to_json() for a in pms_outbox.listed(db, hotel, "dead", 20)]
    failing = [a.to_json() for a in pms_outbox.listed(db, hotel, "pending", 20) if a.last_error]
    out = {"hotel": hotel, "linked": link is not None, "kind": link and link.kind, "url": link and link.url,
           "pmsHotel": link and link.pms_hotel, "lastReadAt": link and link.last_read_at,
           "lastReadCount": link and link.last_read_count, "lastError": link and link.last_error,
           "lastErrorAt": link and link.last_error_at, "waiting": n["pending"], "delivered": n["delivered"],
           "dead": n["dead"], "deadLetters": dead, "waitingWithErrors": failing}
    if as_json:
        click.echo(json.dumps(out))
        return
    if link is None:
        click.echo(f"{hotel}: not linked to a PMS" + (f" ({n['pending']} actions waiting)" if n["pending"] else ""))
        return
    from kiosk.clock import iso

    click.echo(printable(f"{hotel}: linked to {pms_links.connectors.NAMES[link.kind]} at {link.url}"
                         f" (hotel {link.pms_hotel})"))
    click.echo("last read: " + (f"{iso(link.last_read_at)}, {link.last_read_count} reservations"
                                if link.last_read_at else "never"))
    click.echo(f"actions: {n['pending']} waiting, {n['delivered']} delivered, {n['dead']} dead")
    if link.last_error:
        click.echo(printable(f"last error ({iso(link.last_error_at)}): {link.last_error}"))
    for a in failing:
        click.echo(printable(f"  waiting {a['action']} {a['entity']} (attempt {a['attempts']}): {a['lastError']}"))
    for a in dead:
        click.echo(printable(f"  dead #{a['id']} {a['action']} {a['entity']} ({a['reference']}): {a['lastError']}"))



@main.command("link")
@click.option("--cloud", "cloud_url", required=True, help="The chain cloud's URL.")
@click.option("--device-id", required=True, help="This hub's device id at the chain cloud.")
@click.option("--credential", required=True, envvar="KIOSK_CLOUD_UPSTREAM_CREDENTIAL",
              help="Its credential (`kiosk-cloud device add ID --hotel H` there); or the environment variable.")
@data_dir_option
def link_cmd(cloud_url, device_id, credential):
    """Make this cloud a property hub: relay its kiosks' entries to the chain cloud and its
    changes down to them.  Again: replaces the link (a running hub picks it up)."""
    db = open_db()
    with storage.transaction(db):
        link = upstream.link(db, data_dir(), url=cloud_url, device_id=device_id, credential=credential,
                             now=SystemClock().now())
    click.echo(json.dumps({"cloud": link.url, "deviceId": link.device_id, "linked": True}))


@main.command("upstream")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@data_dir_option
def upstream_cmd(as_json):
    """A hub's link to the chain cloud: last push and pull, what waits, what the chain refused."""
    db = open_db()
    link = upstream.get(db)
    n = relay_outbox.counts(db)
    out = {"linked": link is not None, "cloud": link and link.url, "deviceId": link and link.device_id,
           "lastPushAt": link and link.last_push_at, "lastPullAt": link and link.last_pull_at,
           "lastError": link and link.last_error, "waiting": n["pending"], "delivered": n["delivered"],
           "dead": n["dead"], "oldestWaitingAt": relay_outbox.oldest_waiting(db), "cursors": upstream.cursors(db),
           "deadEntries": relay_outbox.dead(db)}
    if as_json:
        click.echo(json.dumps(out))
        return
    if link is None:
        click.echo("not linked to a chain cloud (this is the chain's cloud, or a single hotel's)")
        return
    from kiosk.clock import iso

    click.echo(printable(f"a hub of {link.url} as {link.device_id}"))
    click.echo(f"last push: {iso(link.last_push_at) if link.last_push_at else 'never'};"
               f" last pull: {iso(link.last_pull_at) if link.last_pull_at else 'never'}")
    click.echo(f"entries: {n['pending']} waiting, {n['delivered']} delivered, {n['dead']} refused by the chain")
    if link.last_error:
        click.echo(printable(f"last error ({iso(link.last_error_at)}): {link.last_error}"))


@main.group()
def audit():
    """Kiosks' audit checkpoints (docs/audit-log.md)."""


@audit.command("verify")
@click.option("--hotel", required=True, help="The hotel whose kiosks to check.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@data_dir_option
def audit_verify(hotel, as_json):
    """Check each kiosk's stored audit checkpoints for the hotel are one consistent sequence with
    valid signatures; exit 1 if one is not, or if the cloud refused a kiosk's checkpoint."""
    from kiosk.clock import iso

    from . import audit_chain

    result = audit_chain.verify_hotel(open_db(), hotel)
    if as_json:
        click.echo(json.dumps(result))
    else:
        if not result["kiosks"]:
            click.echo(printable(f"{hotel}: no audit checkpoints yet"))
        for k in result["kiosks"]:
            last = (f"the last at {k['length']} rows (head {k['headHash'][:16]}), {iso(k['lastAt'])}, key {k['kid']}"
                    if k["accepted"] else "none accepted")
            click.echo(printable(f"{k['kioskId']}: {'ok' if k['ok'] else 'FAILED'}: {k['accepted']} accepted,"
                                 f" {k['refused']} refused; {last}"))
            for p in k["problems"]:
                click.echo(printable(f"  checkpoint {p['checkpoint']}: {p['reason']}"))
    if not result["ok"]:
        raise SystemExit(1)


@main.group()
def guest():
    """A guest's data at the cloud: the right of access and the right to be forgotten (docs/privacy.md)."""


@guest.command("export")
@guest_export_options
@data_dir_option
def guest_export(hotel, confirmation, output):
    """Everything the cloud holds about one guest (the reservation, their requests, sessions and
    codes, offers taken, what went to the PMS) as one JSON document; NOT_FOUND when the hotel
    holds nothing under the confirmation."""
    doc = guest_data.export(open_db(), hotel, confirmation, SystemClock().now())
    write_guest_export(doc, output, ("reservations", "requests", "events"))



@guest.command("erase")
@click.option("--hotel", required=True, help="The guest's hotel.")
@click.option("--confirmation", required=True, help="The reservation's confirmation number.")
@click.option("--yes", is_flag=True, help="Erase: without it nothing is changed (the erasure cannot be undone).")
@data_dir_option
def guest_erase(hotel, confirmation, yes):
    """Erase one guest (the right to be forgotten): their name, contact details and words at the
    cloud, in one transaction, and by pull at every hub and kiosk; ids, dates, rooms, rates and
    amounts stay.  Prints what changed, as counts.  NOT_FOUND when the hotel holds nothing
    under the confirmation."""
    from . import erasure

    if not yes:  # before the database is even opened: nothing changed
        raise KioskError("erasing a guest cannot be undone: nothing was changed; add --yes to erase",
                         {"field": "yes"}, code="VALIDATION_ERROR",
                         hint="export the guest's data first (kiosk-cloud guest export) if they asked for it")
    click.echo(json.dumps(erasure.erase(open_db(), hotel, confirmation, SystemClock().now(), confirmed=True)))


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``kiosk`` command: a thin click layer over the library.

Scripts depend on these forms::

    kiosk init
    kiosk serve [--host H] [--port N]
    kiosk token create --role guest|staff|admin --hotel H [--user U] [--expires-in 30d]
                       [--reusable] [--png FILE] [--svg FILE]
    kiosk token list [--hotel H] [--status active|used|revoked|expired]
    kiosk token revoke JTI
    kiosk audit verify [--expect LENGTH:HASH] [--json]
    kiosk guest export --hotel H --confirmation C [--output FILE]

Global options: ``--config FILE`` (or ``KIOSK_CONFIG``) and ``--data-dir DIR``
(or ``KIOSK_DATA_DIR``).
"""

from __future__ import annotations

import errno
import json
import re
import sys
from pathlib import Path

import click

from . import booking, logs, qr, tokens
from . import config as config_mod
from .cliutil import (
    ErrorGroup,
    create_server,
    guest_export_options,
    serve_until_signal,
    tune_gc,
    write_guest_export,
)
from .clock import iso, parse_duration
from .errors import CameraUnavailable, StorageFull, ValidationError
from .files import private_umask
from .instance import Instance


class Ctx:
    def __init__(self, config_path, data_dir):
        self.config_path = config_path
        self.data_dir = data_dir
        self._instance = None

    def instance(self, **overrides) -> Instance:
        if self._instance is None:
            over = dict(overrides)
            if self.data_dir:
                over["data_dir"] = self.data_dir
            self._instance = Instance(config_mod.load(self.config_path, overrides=over))
            note = config_mod.unused_local_config(self.config_path)
            if note:
                click.echo(f"warning: {note}", err=True)
        return self._instance

    def initialised(self) -> Instance:
        """The instance, which ``kiosk init`` must have set up (else NOT_INITIALISED, no files made)."""
        inst = self.instance()
        inst.load_keys()
        return inst


class KioskGroup(ErrorGroup):
    """Every failure below is one line, ``error: CODE: message (hint)``, and a non-zero exit."""


@click.group(cls=KioskGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="KIOSK_CONFIG",
              help="YAML config file (default: embedded defaults).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="KIOSK_DATA_DIR",
              help="Directory for all mutable state of this instance.")
@click.pass_context
def main(ctx, config_path, data_dir):
    """Hotel edge kiosk."""
    private_umask(ctx)  # the database, logs and exports: this user's only, whatever the umask
    ctx.obj = Ctx(config_path, data_dir)


@main.command()
@click.pass_obj
def init(obj: Ctx):
    """Create keys, trust list, session secret and database (keeps existing ones)."""
    result = obj.instance().init()
    click.echo(json.dumps(result))


@main.command()
@click.argument("dest", type=click.Path(file_okay=False))
@click.pass_obj
def backup(obj: Ctx, dest):
    """Back up the data directory to the new folder DEST: a consistent copy of the database
    (undelivered outbox included, while the kiosk keeps running), keys, cloud link and photos."""
    from . import backup as backup_mod

    click.echo(json.dumps(backup_mod.backup(obj.initialised(), dest)))


@main.command()
@click.argument("backup", type=click.Path(file_okay=False))
@click.option("--keys-from", type=click.Path(file_okay=False, exists=True), default=None,
              help="The data directory this backup replaces (moved aside): its guests' keys are taken over at"
                   " once (a guest erased since stays erased). Without it the agent unwraps the backup's keys"
                   " with the hotel's backup key from the cloud.")
@click.pass_obj
def restore(obj: Ctx, backup, keys_from):
    """Restore BACKUP (a folder `kiosk backup` wrote) into --data-dir, which must not hold a kiosk
    yet; checks every file, brings an older schema up to date, and prints what waits in the outbox."""
    from . import backup as backup_mod

    click.echo(json.dumps(backup_mod.restore(obj.instance(), backup, keys_from=keys_from)))


@main.command()
@click.option("--host", help="Address to listen on (default from config: server.host).")
@click.option("--port", type=int, help="Port to listen on (default from config: server.port).")
@click.pass_obj
def serve(obj: Ctx, host, port):
    """Serve the kiosk's API and screens."""
    import logging

    from .web import create_app

    over = {"server": {k: v for k, v in (("host", host), ("port", port)) if v is not None}}
    obj.instance(**over)
    inst = obj.initialised()  # before anything is written: no logs/ in a data dir that is not one
    cfg = inst.config
    app = create_app(instance=inst)
    # listen first: a port in use is ADDRESS_IN_USE before anything says "serving" or starts
    # server.threads for requests plus one per live feed the feeds' gate admits (kiosk.admission):
    # open staff terminals can never take the threads requests need.  A lookahead of one lets a
    # feed see its client leave; the body limit is the largest the app accepts, so a bigger
    # body is refused as it arrives instead of being spooled to disk first.
    server = create_server(app, host=cfg.server.host, port=cfg.server.port,
                           threads=cfg.server.threads + cfg.capacity.streams, ident="kiosk",
                           channel_request_lookahead=1, connection_limit=max(100, 4 * cfg.capacity.streams),
                           max_request_body_size=max(cfg.server.max_body_bytes, cfg.server.max_media_body_bytes))
    logs.configure(cfg.log.level, inst.log_dir)
    scanner = None

    def stop_camera():
        if scanner is not None:
            scanner.stop()

    try:
        if cfg.camera.enabled:
            from .camera import loop

            scanner = loop.from_config(camera_config(inst), instance=inst, scan_service=app.config["KIOSK_SCAN"],
                                       bus=app.config["KIOSK_EVENTS"]).start()
            app.config["KIOSK_CAMERA"] = scanner
        logging.getLogger("kiosk").info("serving", extra={"host": cfg.server.host, "port": server.effective_port,
                                                          "dataDir": str(inst.root), "camera": cfg.camera.enabled})
        tune_gc()  # start-up's objects out of the collector's way (kiosk.cliutil)
        # until SIGTERM / Ctrl-C (any mix): the handlers only record the signal (kiosk.cliutil)
        serve_until_signal(server, logging.getLogger("kiosk"), "kiosk", on_stop=stop_camera)
    except BaseException:
        server.close()
        stop_camera()
        raise


def camera_config(inst):
    """The config with the camera's default folder (DATA_DIR/camera) filled in."""
    cfg = inst.config
    if cfg.camera.uri or cfg.camera.source != "folder":
        return cfg
    return cfg.model_copy(update={"camera": cfg.camera.model_copy(update={"uri": str(inst.root / "camera")})})


@main.command()
@click.option("--decoders", default="zxing,pyzbar,opencv", show_default=True,
              help="Comma-separated decoders to try, in order.")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
def decode(decoders, images):
    """Decode QR codes in IMAGES; one JSON line per image: file, texts, decoder, ms."""
    import cv2

    from .camera.decoders import NAMES, Chain

    names = [n.strip() for n in decoders.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise click.BadParameter(f"unknown decoder {', '.join(unknown) or '(none)'}; known: {', '.join(NAMES)}",
                                 param_hint="--decoders")
    chain = Chain(names, budget_ms=1e9)
    failed = 0
    for path in images:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            failed += 1
            click.echo(json.dumps({"file": path, "texts": [], "decoder": None, "ms": 0.0,
                                   "error": {"code": "VALIDATION_ERROR", "message": "not a readable image"}}))
            continue
        r = chain.decode(img)
        click.echo(json.dumps({"file": path, "texts": r.texts, "decoder": r.decoder, "ms": round(r.ms, 2)}))
    if failed:
        raise SystemExit(1)


@main.group()
def camera():
    """The camera: check what it delivers."""


@camera.command("check")
@click.option("--seconds", type=float, default=5.0, show_default=True, help="How long to read.")
@click.pass_obj
def camera_check(obj: Ctx, seconds):
    """Report the source, resolution, real frame rate and decode rate over a few seconds; exit 1
    (CAMERA_UNAVAILABLE) if the source delivered no frame."""
    from .camera.check import check

    inst = obj.instance()
    cam = camera_config(inst).camera
    device = f"/dev/video{cam.uri or 0}" if (cam.uri or "0").isdigit() else cam.uri
    where = {"folder": (Path(cam.uri).is_dir, "folder", cam.uri), "file": (Path(cam.uri).is_file, "video file", cam.uri),
             "v4l2": (Path(device).exists, "camera device", device)}.get(cam.source)
    if where is not None and not where[0]():
        _, what, name = where
        raise CameraUnavailable(f"camera.source is {cam.source} and there is no {what} {name or '(none)'}",
                                {"source": cam.source, "uri": cam.uri},
                                hint=f"plug it in or create it, or set camera.uri (KIOSK__CAMERA__URI) to an"
                                     f" existing {what}")
    with click.progressbar(length=int(seconds * 10), label="reading frames", file=sys.stderr) as bar:
        done = [0]

        def progress(elapsed):
            step = min(int(elapsed * 10), bar.length) - done[0]
            if step > 0:
                bar.update(step)
                done[0] += step
        result = check(camera_config(inst), seconds, progress)
    click.echo(json.dumps(result))
    if result["resolution"] is None:  # not one frame in the whole time
        raise CameraUnavailable(f"no frame from the {cam.source} source {result['source'].get('uri', '')}"
                                f" in {result['seconds']} s", {"source": cam.source, "uri": cam.uri})


@main.group()
def data():
    """Property data: import a PMS export."""


@data.command("import")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--hotel", required=True, help="The hotel the export belongs to.")
@click.pass_obj
def data_import(obj: Ctx, folder, hotel):
    """Import FOLDER (CSV files of a PMS export), all or nothing; prints rows per file as JSON."""
    from .property import importer

    inst = obj.initialised()
    if hotel not in inst.config.property.hotels:
        raise click.BadParameter(f"this kiosk serves {', '.join(inst.config.property.hotels)}", param_hint="--hotel")
    with click.progressbar(length=0, label="importing", file=sys.stderr, show_pos=True) as bar:
        counts = importer.import_dir(inst.connect(), folder, hotel, progress=bar.update)
    click.echo(json.dumps(counts))


@data.command("import-bookings")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--hotel", required=True, help="The hotel id to import into.")
@click.option("--name", "hotel_name", required=True, help='The dataset\'s hotel, e.g. "City Hotel".')
@click.pass_obj
def data_import_bookings(obj: Ctx, file, hotel, hotel_name):
    """Import FILE (the hotel-booking-demand CSV, gzipped or not) as booking history."""
    from .property import bookings

    inst = obj.initialised()
    with click.progressbar(length=0, label="importing bookings", file=sys.stderr, show_pos=True) as bar:
        n = bookings.import_bookings(inst.connect(), file, hotel, hotel_name, progress=bar.update)
    click.echo(json.dumps({"reservations": n}))


@main.group()
def model():
    """The hotel models: list them, run one."""


@model.command("list")
def model_list():
    """The registered models, one JSON object per line: id, roles, reads, timeout."""
    from .models import registry

    for spec in registry.specs().values():
        click.echo(json.dumps({"modelId": spec.id, "roles": sorted(spec.roles), "reads": list(spec.reads),
                               "timeoutSeconds": spec.timeout_seconds, "description": spec.description}))


@model.command("run")
@click.argument("model_id")
@click.option("--hotel", required=True, help="The hotel whose data the model reads.")
@click.option("--payload", default="{}", show_default=True, help="The request payload, as JSON.")
@click.pass_obj
def model_run(obj: Ctx, model_id, hotel, payload):
    """Run MODEL_ID on the hotel's local data; prints the result as JSON."""
    from .models import runner

    try:
        body = json.loads(payload)
    except ValueError as e:
        raise ValidationError(f"--payload is not JSON: {e}", {"field": "--payload"},
                              hint="quote it for the shell: --payload '{\"businessDate\": \"2026-05-27\"}'") from None
    if isinstance(body, dict) and set(body) == {"requestPayload"}:
        body = body["requestPayload"]  # the API's wrapper: --payload is what goes inside it
    inst = obj.initialised()
    click.echo(json.dumps(runner.run(inst, model_id, body, hotel_id=hotel, actor="cli")))


@main.group()
def room():
    """Rooms: reference photos for the inspection check."""


@room.command("reference")
@click.argument("room_number")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--hotel", default=None, help="The hotel (default: the first this kiosk serves).")
@click.pass_obj
def room_reference(obj: Ctx, room_number, image, hotel):
    """Set IMAGE as ROOM_NUMBER's reference photo (what the room looks like when ready)."""
    import cv2

    from .models.room_status import reference_path, set_reference

    inst = obj.initialised()
    hotel = hotel or inst.config.property.hotels[0]
    if hotel not in inst.config.property.hotels:
        raise click.BadParameter(f"this kiosk serves {', '.join(inst.config.property.hotels)}", param_hint="--hotel")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", room_number):
        raise click.BadParameter("a room number is letters, digits, - and _ (at most 16)", param_hint="ROOM_NUMBER")
    img = cv2.imread(image, cv2.IMREAD_COLOR)
    if img is None:
        raise ValidationError("not a readable image", {"file": image})
    path = reference_path(str(inst.root), hotel, room_number)
    from .files import write_private

    # on disk (fsync'ed, renamed, directory fsync'ed) before the row that points at it commits
    write_private(path, cv2.imencode(".png", img)[1].tobytes())
    db = inst.connect()
    set_reference(db, hotel, room_number, path, inst.clock.now())
    click.echo(json.dumps({"hotelId": hotel, "roomNumber": room_number, "path": str(path),
                           "width": img.shape[1], "height": img.shape[0]}))


@main.group()
def demo():
    """The demo property."""


@demo.command("seed")
@click.option("--hotel", default=None, help="The hotel to fill (default: the first this kiosk serves).")
@click.option("--seed", "seed_value", type=int, default=7, show_default=True, help="Random seed (same seed, same hotel).")
@click.pass_obj
def demo_seed(obj: Ctx, hotel, seed_value):
    """Fill a hotel with the demo property (replaces its property data); prints what was made."""
    from .clock import local_date
    from .property import demo as demo_mod

    inst = obj.initialised()
    hotel = hotel or inst.config.property.hotels[0]
    today = local_date(inst.clock.now(), inst.config.property.timezone)
    click.echo(json.dumps(demo_mod.seed(inst.connect(), hotel, today, seed_value=seed_value)))


@main.group()
def token():
    """Issue, list and revoke QR tokens."""


@token.command("create")
@click.option("--role", type=click.Choice(tokens.ROLES), required=True)
@click.option("--hotel", required=True, help="Hotel id the token is for.")
@click.option("--user", help="User id (subject); generated if omitted.")
@click.option("--name", help="Display name shown on the screen.")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 12h, 30d (default: tokens.default_ttl).")
@click.option("--reusable", is_flag=True, help="Allow more than one scan (default: one-time).")
@click.option("--walk-in", is_flag=True,
              help="A guest code without a stay: --user need not be a reservation (no offers; requests ask for the room).")
@click.option("--png", type=click.Path(dir_okay=False), help="Write a printable QR as PNG.")
@click.option("--svg", type=click.Path(dir_okay=False), help="Write a printable QR as SVG.")
@click.pass_obj
def token_create(obj: Ctx, role, hotel, user, name, expires_in, reusable, walk_in, png, svg):
    """Sign a token; prints only the token on stdout.  A guest's --user is the booking's
    confirmation number, and must be one the property holds (or give --walk-in)."""
    inst = obj.initialised()
    cfg = inst.config
    if hotel in cfg.property.hotels:  # another hotel: tokens.issue says HOTEL_MISMATCH
        booking.check_guest_code(inst.connect(), hotel_id=hotel, role=role, user_id=user, walk_in=walk_in)
    try:
        ttl = parse_duration(expires_in or cfg.tokens.default_ttl)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--expires-in") from None
    if ttl > parse_duration(cfg.tokens.max_ttl):
        raise click.BadParameter(f"longer than tokens.max_ttl ({cfg.tokens.max_ttl})",
                                 param_hint="--expires-in")
    pictures = [(path, kind) for path, kind in ((png, "png"), (svg, "svg")) if path]
    written: list[Path] = []

    def write_pictures(token: str) -> None:
        for path, kind in pictures:
            written.append(write_qr(token, path, kind))

    try:
        # both or neither: the pictures are written inside the token's transaction, so a
        # picture that cannot be written leaves no active token that nobody ever saw
        tok, _ = tokens.issue(inst.connect(), inst.load_keys(), hotel_id=hotel, role=role,
                              now=inst.clock.now(), ttl_seconds=ttl, user_id=user, name=name,
                              reusable=reusable, issuer=cfg.property.issuer, node=cfg.property.kiosk_id,
                              before_commit=write_pictures)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    click.echo(tok)


def write_qr(token: str, path: str, kind: str) -> Path:
    """Write the token's QR code as ``kind`` to ``path`` (complete or not at all); VALIDATION_ERROR
    naming the option when it cannot be written."""
    import io
    import os

    buf = io.BytesIO()
    qr.make(token).save(buf, kind=kind, scale=10, border=4)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.partial")
    try:
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"cannot write {path}: {e.strerror}", {"field": f"--{kind}", "path": path}) from None
        hint = ("create the folder first" if e.errno == errno.ENOENT else
                "choose a file in a folder you may write to" if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
                else "choose another file")
        raise ValidationError(f"cannot write --{kind} {path}: {e.strerror}", {"field": f"--{kind}", "path": path},
                              hint=f"{hint}; no token was created") from None
    return target


@token.command("list")
@click.option("--hotel", help="Only this hotel (default: every hotel this kiosk serves).")
@click.option("--status", type=click.Choice(tokens.STATUSES))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def token_list(obj: Ctx, hotel, status, as_json):
    """List issued tokens with their status."""
    inst = obj.initialised()
    hotels = [hotel] if hotel else list(inst.config.property.hotels)
    rows = tokens.list_tokens(inst.connect(), hotels=hotels, now=inst.clock.now(), status=status)
    for r in rows:
        if as_json:
            click.echo(json.dumps({"jti": r["jti"], "hotelId": r["hotel_id"], "userId": r["subject"],
                                   "role": r["role"], "status": r["status"],
                                   "reusable": bool(r["reusable"]),
                                   "expiresAt": iso(r["expires_at"])}))
        else:
            click.echo(f"{r['jti']}  {r['hotel_id']:<10} {r['role']:<6} {r['status']:<8} "
                       f"{iso(r['expires_at'])}  {r['subject']}")


@token.command("revoke")
@click.argument("jti")
@click.pass_obj
def token_revoke(obj: Ctx, jti):
    """Revoke a token by its jti."""
    inst = obj.initialised()
    result = tokens.revoke(inst.connect(), jti, hotels=list(inst.config.property.hotels),
                           now=inst.clock.now(), by="cli", node=inst.config.property.kiosk_id)
    click.echo(json.dumps(result))


@main.group()
def audit():
    """The audit log: check its hash chain."""


@audit.command("verify")
@click.option("--expect", "expected", multiple=True, metavar="LENGTH:HASH",
              help="Also check the chain's hash after LENGTH rows is HASH (e.g. the cloud's last checkpoint"
                   " of this kiosk); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def audit_verify(obj: Ctx, expected, as_json):
    """Recompute the audit log's hash chain and check it against this kiosk's checkpoints; exit 1
    naming the first row (its id) that does not fit."""
    from . import audit as audit_mod

    expect = []
    for text in expected:
        length, _, value = text.partition(":")
        if not length.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", value):
            raise click.BadParameter(f"{text!r}: give LENGTH:HASH (a row count, a 64-digit hex hash)",
                                     param_hint="--expect")
        expect.append((int(length), value))
    inst = obj.initialised()
    result = audit_mod.verify(inst.connect(), inst.load_keys().signing_key.public_key(), expect)
    if as_json:
        click.echo(json.dumps(result))
    else:
        last = result["lastCheckpoint"]
        click.echo(f"{result['rows']} audit rows: {result['preChain']} from before the chain, a chain of"
                   f" {result['length']} (head {result['headHash'][:16] or '-'})")
        click.echo(f"{result['checkpoints']} checkpoints" + (
            f"; the last at {last['length']} rows, {iso(last['at'])}" if last else ""))
        for p in result["problems"]:
            if "id" in p:
                where = f"row {p['id']}" + (f" (chain row {p['seq']})" if p.get("seq") else "")
            else:
                where = f"checkpoint {p['checkpoint']}"
            click.echo(f"{where}: {p['reason']}")
        click.echo("ok: the chain and its checkpoints fit" if result["ok"] else
                   f"FAILED: the first row that does not fit is {result['firstBadRow']}"
                   if result["firstBadRow"] is not None else "FAILED")
    if not result["ok"]:
        raise SystemExit(1)


@main.group()
def guest():
    """A guest's data at this kiosk: the right of access (docs/privacy.md)."""


@guest.command("export")
@guest_export_options
@click.pass_obj
def guest_export(obj: Ctx, hotel, confirmation, output):
    """Everything this kiosk holds about one guest (the reservation, their sessions and codes,
    requests and replies, offers, questions, model runs, audit rows and outbox entries) as one
    JSON document; NOT_FOUND when the hotel holds no guest under the confirmation here."""
    from . import guest_export as guest_export_mod

    inst = obj.initialised()
    doc = guest_export_mod.export(inst.connect(), hotel, confirmation, inst.clock.now())
    write_guest_export(doc, output, ("reservations", "sessions", "requests", "outbox"))


if __name__ == "__main__":  # pragma: no cover
    main()

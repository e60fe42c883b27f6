"""The systemd units in systemd/: valid for systemd, hardened, commented, and consistent
with the CLI and the config they run.

``systemd-analyze verify`` refuses a unit whose ``ExecStart=`` binary does not exist,
so each unit is copied to a temp dir with the install paths pointed at executables
that do exist here (the venv's ``kiosk`` script; ``true`` for a missing Chromium).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import config as config_mod

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "systemd"
INSTALLED_BIN = "/opt/hotel-kiosk/.venv/bin/"
STATE_DIR = "/var/lib/hotel-kiosk"
CHROMIUM = "/usr/bin/chromium"
VENV_BIN = Path(sys.executable).parent
ANALYZE = shutil.which("systemd-analyze")

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def directives(unit: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every directive, continuation lines joined."""
    out, section, pending = [], None, ""
    for raw in (UNITS / unit).read_text().splitlines():
        line = raw.strip()
        if pending:
            line, pending = pending + " " + line, ""
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(unit: str, key: str) -> list[str]:
    return [v for _, k, v in directives(unit) if k == key]


def installable(unit: str, tmp_path: Path) -> Path:
    """A copy of ``unit`` whose executables exist on this machine."""
    assert (VENV_BIN / "kiosk").exists(), "the project must be installed in the venv"
    text = (UNITS / unit).read_text().replace(INSTALLED_BIN, f"{VENV_BIN}/")
    if not Path(CHROMIUM).exists():
        text = text.replace(CHROMIUM, shutil.which("true"))
    out = tmp_path / "units" / unit
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    out.chmod(0o644)  # systemd warns about executable or world-writable unit files
    return out


def analyze(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    runtime = tmp_path / "runtime"  # the --user manager needs a runtime dir
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""}
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, env=env, timeout=120)


@needs_analyze
@pytest.mark.parametrize("unit, scope", [("kiosk.service", []), ("kiosk-agent.service", []),
                                         ("kiosk-browser.service", ["--user"]), ("kiosk-cloud.service", []),
                                         ("kiosk-cloud-purge.service", []), ("kiosk-cloud-purge.timer", [])])
def test_systemd_analyze_verify_is_silent(unit, scope, tmp_path):
    if unit.endswith(".timer"):  # verify looks for the service the timer starts next to it
        installable(unit.replace(".timer", ".service"), tmp_path)
    path = installable(unit, tmp_path)
    r = analyze(tmp_path, *scope, "verify", "--man=no", str(path))
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


@needs_analyze
def test_verify_does_report_a_broken_unit(tmp_path):
    """The check above is not vacuous: verify exits 0 on warnings but does print them."""
    bad = installable("kiosk.service", tmp_path)
    text = bad.read_text().replace("Restart=on-failure", "Restart=sometimes")
    bad.write_text(text.replace("UMask=0077", "UMask=0077\nProtectEverything=yes"))
    out = analyze(tmp_path, "verify", "--man=no", str(bad))
    text = out.stdout + out.stderr
    assert "ProtectEverything" in text and "sometimes" in text


@needs_analyze
@pytest.mark.parametrize("unit", ["kiosk.service", "kiosk-agent.service", "kiosk-cloud.service",
                                  "kiosk-cloud-purge.service"])
def test_service_exposure_is_low(unit, tmp_path):
    """``systemd-analyze security`` rates the units at most 2.0 of 10 (1.4 when written)."""
    path = installable(unit, tmp_path)
    r = analyze(tmp_path, "security", "--offline=yes", "--threshold=20", "--man=no", str(path))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


def test_kiosk_service_runs_init_then_serve_on_the_state_directory():
    assert values("kiosk.service", "ExecStartPre") == [f"{INSTALLED_BIN}kiosk --data-dir {STATE_DIR} init"]
    assert values("kiosk.service", "ExecStart") == [f"{INSTALLED_BIN}kiosk --data-dir {STATE_DIR} serve"]
    assert values("kiosk.service", "StateDirectory") == [Path(STATE_DIR).name]
    assert values("kiosk.service", "Restart") == ["on-failure"]
    assert values("kiosk.service", "WantedBy") == ["multi-user.target"]


@pytest.mark.parametrize("unit", ["kiosk.service", "kiosk-agent.service", "kiosk-cloud.service",
                                  "kiosk-cloud-purge.service"])
def test_services_are_unprivileged_and_hardened(unit):
    d = {k: v for _, k, v in directives(unit)}
    assert d.get("DynamicUser") == "yes" or d.get("User", "root") not in ("", "root")
    expected = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "UMask": "0077", "CapabilityBoundingSet": "",
                "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
                "SystemCallArchitectures": "native", "StateDirectoryMode": "0700"}
    assert {k: d.get(k) for k in expected} == expected
    assert "@system-service" in values(unit, "SystemCallFilter")
    assert set(d["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_kiosk_service_notes_what_the_camera_needs():
    text = (UNITS / "kiosk.service").read_text()
    assert "PrivateDevices=no" in text and "camera" in text


def test_agent_shares_the_kiosk_state_and_waits_for_a_link():
    for key in ("User", "Group", "StateDirectory", "DynamicUser"):
        assert values("kiosk-agent.service", key) == values("kiosk.service", key), key
    assert values("kiosk-agent.service", "ExecStart") == [f"{INSTALLED_BIN}kiosk-agent --data-dir {STATE_DIR} run"]
    assert values("kiosk-agent.service", "ExecStartPre") == values("kiosk.service", "ExecStartPre")
    assert values("kiosk-agent.service", "ConditionPathExists") == [f"{STATE_DIR}/keys/cloud.json"]
    assert values("kiosk-agent.service", "Type") == ["notify"]
    assert values("kiosk-agent.service", "NotifyAccess") == ["main"]
    watchdog = float(values("kiosk-agent.service", "WatchdogSec")[0])
    agent = config_mod.defaults()["agent"]
    # pings come from every push-job run; the watchdog allows many missed runs and more
    # than a request that times out
    cloud = config_mod.defaults()["cloud"]
    assert watchdog >= 20 * agent["poll_interval_seconds"]
    assert watchdog > cloud["connect_timeout_seconds"] + cloud["request_timeout_seconds"]


def test_agent_run_speaks_the_notify_protocol_the_unit_expects(tmp_path):
    """A real ``kiosk-agent run`` sends READY=1, then WATCHDOG=1 again and again even
    with the cloud unreachable, then STOPPING=1 on SIGTERM: what Type=notify and
    WatchdogSec= rely on."""
    import signal
    import socket
    import time

    data = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    kiosk_bin, agent_bin = str(VENV_BIN / "kiosk"), str(VENV_BIN / "kiosk-agent")
    subprocess.run([kiosk_bin, "--data-dir", str(data), "init"], env=env, check=True,
                   capture_output=True, timeout=60)
    subprocess.run([agent_bin, "--data-dir", str(data), "link", "--cloud", "http://127.0.0.1:9",
                    "--device-id", "kiosk-1", "--credential", "x" * 32], env=env, check=True,
                   capture_output=True, timeout=60)
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(sock_path))
        srv.settimeout(120)  # a generous deadline for each message: the agent starts slowly on a loaded box
        proc = subprocess.Popen([agent_bin, "--data-dir", str(data), "run"],
                                env={**env, "NOTIFY_SOCKET": str(sock_path)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            got = [srv.recv(256).decode() for _ in range(6)]
            assert "READY=1" in got and got.count("WATCHDOG=1") >= 4
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 120
            while (msg := srv.recv(256).decode()) != "STOPPING=1":
                assert time.monotonic() < deadline, "no STOPPING=1 after SIGTERM"
                assert msg == "WATCHDOG=1"
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_unit_command_lines_work_with_the_cli(tmp_path):
    """ExecStartPre really is an idempotent init, and ExecStart parses as `kiosk serve`."""
    data = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}

    def argv(cmd: str) -> list[str]:
        return shlex.split(cmd.replace(INSTALLED_BIN, f"{VENV_BIN}/").replace(STATE_DIR, str(data)))

    pre = argv(values("kiosk.service", "ExecStartPre")[0])
    first = subprocess.run(pre, capture_output=True, text=True, env=env, timeout=60, check=True)
    second = subprocess.run(pre, capture_output=True, text=True, env=env, timeout=60, check=True)
    assert json.loads(first.stdout)["created"] == ["issuer key", "trust list", "session secret"]
    assert json.loads(second.stdout)["created"] == []
    assert json.loads(first.stdout)["kid"] == json.loads(second.stdout)["kid"]
    for f in ("issuer.pem", "trust.json", "session.secret"):
        assert stat.S_IMODE((data / "keys" / f).stat().st_mode) == 0o600
    start = subprocess.run([*argv(values("kiosk.service", "ExecStart")[0]), "--help"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert start.returncode == 0 and "Serve the kiosk's API and screens" in start.stdout


def test_browser_opens_the_kiosk_in_kiosk_mode_as_a_user_unit():
    cfg = config_mod.defaults()["server"]
    argv = shlex.split(values("kiosk-browser.service", "ExecStart")[0])
    assert argv[0] == CHROMIUM and "--kiosk" in argv
    assert argv[-1] == f"http://{cfg['host']}:{cfg['port']}/"
    assert values("kiosk-browser.service", "WantedBy") == ["graphical-session.target"]
    assert values("kiosk-browser.service", "Restart") == ["always"]
    assert not values("kiosk-browser.service", "User")  # a user unit runs as its user


@pytest.mark.parametrize("unit", ["kiosk.service", "kiosk-agent.service", "kiosk-browser.service",
                                  "kiosk-cloud.service", "kiosk-cloud-purge.service", "kiosk-cloud-purge.timer"])
def test_every_directive_is_commented(unit):
    """Each run of directives follows a comment and is short (no silent blocks)."""
    run, commented = 0, False
    for raw in (UNITS / unit).read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            run, commented = 0, True
        elif not line or line.startswith("["):
            run, commented = 0, False
        elif raw[:1].isspace():
            continue  # continuation of the previous directive
        else:
            run += 1
            assert commented and run <= 6, f"{unit}: add a comment above {line!r}"


CLOUD_STATE = "/var/lib/kiosk-cloud"


def test_cloud_units_run_the_cli_on_postgresql_with_the_password_in_a_credential(tmp_path):
    """kiosk-cloud.service serves with workers and no purge of its own; the purge unit runs
    `kiosk-cloud purge` hourly; both read the URL from a root-only environment file and the
    password from a systemd credential (libpq's PGPASSFILE), never from a command line."""
    for unit in ("kiosk-cloud.service", "kiosk-cloud-purge.service"):
        assert values(unit, "EnvironmentFile") == ["/etc/kiosk-cloud/cloud.env"], unit
        assert values(unit, "LoadCredential") == ["pgpass:/etc/kiosk-cloud/pgpass"], unit
        assert "PGPASSFILE=%d/pgpass" in values(unit, "Environment"), unit
        assert values(unit, "User") == ["kiosk-cloud"] and values(unit, "StateDirectory") == ["kiosk-cloud"], unit
        assert "postgresql://" not in (UNITS / unit).read_text().split("ExecStart=", 1)[1].split("\n", 1)[0]
    serve = shlex.split(values("kiosk-cloud.service", "ExecStart")[0])
    assert serve[:4] == [f"{INSTALLED_BIN}kiosk-cloud", "--data-dir", CLOUD_STATE, "serve"]
    assert serve[serve.index("--purge-every") + 1] == "off" and int(serve[serve.index("--workers") + 1]) > 1
    purge = shlex.split(values("kiosk-cloud-purge.service", "ExecStart")[0])
    assert purge[:4] == [f"{INSTALLED_BIN}kiosk-cloud", "--data-dir", CLOUD_STATE, "purge"]
    assert values("kiosk-cloud-purge.service", "Type") == ["oneshot"]
    assert values("kiosk-cloud-purge.timer", "Unit") == ["kiosk-cloud-purge.service"]
    assert values("kiosk-cloud-purge.timer", "OnCalendar") == ["hourly"]
    assert values("kiosk-cloud-purge.timer", "WantedBy") == ["timers.target"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    for argv, words in ((serve, "Serve the sync and read API"), (purge, "")):
        argv = [a.replace(INSTALLED_BIN, f"{VENV_BIN}/").replace(CLOUD_STATE, str(tmp_path)) for a in argv]
        r = subprocess.run([*argv, "--help"], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0 and words in r.stdout, r.stderr
    # the purge unit really purges: the same command on a SQLite cloud here
    argv = [a.replace(INSTALLED_BIN, f"{VENV_BIN}/").replace(CLOUD_STATE, str(tmp_path / "c")) for a in purge]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr

"""Configuration: defaults -> file -> environment -> validate, with named errors."""

from pathlib import Path

import pytest

from kiosk import config as config_mod
from kiosk.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_config_yaml_documents_exactly_the_embedded_defaults():
    assert config_mod.load(REPO / "config.yaml", env={}).model_dump() == config_mod.defaults()


def test_file_then_environment_then_overrides(tmp_path):
    f = tmp_path / "k.yaml"
    f.write_text("server:\n  port: 9000\n  threads: 2\n")
    cfg = config_mod.load(f, env={"KIOSK__SERVER__PORT": "9100"}, overrides={"server": {"threads": 3}})
    assert (cfg.server.port, cfg.server.threads) == (9100, 3)
    assert cfg.server.host == "127.0.0.1"  # untouched default survives the merge


def test_config_file_from_environment_and_data_dir(tmp_path):
    f = tmp_path / "k.yaml"
    f.write_text("data_dir: /from/file\n")
    cfg = config_mod.load(None, env={"KIOSK_CONFIG": str(f)})
    assert cfg.data_dir == "/from/file"
    cfg = config_mod.load(None, env={"KIOSK_CONFIG": str(f), "KIOSK_DATA_DIR": "/from/env"})
    assert cfg.data_dir == "/from/env"


def test_unknown_key_names_key_and_file(tmp_path):
    f = tmp_path / "k.yaml"
    f.write_text("server:\n  prot: 9000\n")
    with pytest.raises(ConfigError) as e:
        config_mod.load(f, env={})
    assert "server.prot" in e.value.message and str(f) in e.value.message
    assert e.value.details == {"key": "server.prot", "file": str(f)}


def test_wrong_value_names_key_and_file(tmp_path):
    f = tmp_path / "k.yaml"
    f.write_text("store:\n  synchronous: OFF\n")
    with pytest.raises(ConfigError) as e:
        config_mod.load(f, env={})
    assert "store.synchronous" in e.value.message and str(f) in e.value.message


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError) as e:
        config_mod.load(None, env={"KIOSK__SERVER__PORT": "not-a-port"})
    assert "KIOSK__SERVER__PORT" in e.value.message and "server.port" in e.value.message


@pytest.mark.parametrize("text", ["- a list\n", "server: [\n"])
def test_malformed_file(tmp_path, text):
    f = tmp_path / "k.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        config_mod.load(f, env={})
    assert str(f) in e.value.message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        config_mod.load(tmp_path / "nope.yaml", env={})
    assert "nope.yaml" in e.value.message


def test_bad_duration_and_hotel_id(tmp_path):
    with pytest.raises(ConfigError, match="tokens.default_ttl"):
        config_mod.load(None, env={}, overrides={"tokens": {"default_ttl": "soon"}})
    with pytest.raises(ConfigError, match="property.hotels"):
        config_mod.load(None, env={}, overrides={"property": {"hotels": ["bad id!"]}})


def test_a_config_yaml_in_the_working_directory_that_is_not_in_use_is_named(tmp_path):
    """A config.yaml someone edited next to them, while every command reads another (or the
    embedded defaults), is said once, on stderr; the checkout's own (the defaults) is quiet."""
    import subprocess
    import sys
    from pathlib import Path

    assert config_mod.unused_local_config(None, cwd=Path(__file__).resolve().parents[1]) is None
    (tmp_path / "config.yaml").write_text("server:\n  port: 9999\n")
    note = config_mod.unused_local_config(None, cwd=tmp_path)
    assert note and "not the configuration in use" in note and "--config config.yaml" in note
    assert config_mod.unused_local_config(tmp_path / "config.yaml", cwd=tmp_path) is None  # it is the one in use
    (tmp_path / "config.yaml").write_text("server: [\n")
    assert "not valid either" in config_mod.unused_local_config(None, cwd=tmp_path)
    kiosk = Path(sys.executable).parent / "kiosk"
    p = subprocess.run([str(kiosk), "--data-dir", str(tmp_path / "k"), "init"], cwd=tmp_path, capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert p.returncode == 0 and p.stderr.count("warning: ./config.yaml") == 1, p.stderr

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

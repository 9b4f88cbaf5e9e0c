"""Where a config comes from: -C inline JSON, and GOST's default gost.<ext> search."""

from __future__ import annotations

import pytest

from gostfast.config.errors import ConfigError
from gostfast.config.sources import find_default, load_source

SERVICE = '{"services": [{"name": "s", "addr": ":1", "handler": {"type": "auto"}}]}'


def test_inline_json() -> None:
    cfg = load_source("  " + SERVICE + "\n")
    assert [s.name for s in cfg.services] == ["s"]


def test_inline_json_error_names_the_source() -> None:
    with pytest.raises(ConfigError) as exc:
        load_source('{"services": [{"addr": ":1", "handler": 5}]}')
    assert str(exc.value).startswith("services[0].handler: expected a mapping")


def test_a_path_is_a_file(tmp_path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text("services: [{name: f, addr: ':1'}]\n")
    assert load_source(str(p)).services[0].name == "f"


def _dirs(tmp_path):
    etc, home, here = (tmp_path / d for d in ("etc", "home", "here"))
    for d in (etc, home, here):
        d.mkdir()
    return etc, home, here


def test_default_search_order_dirs_then_viper_extensions(tmp_path) -> None:
    etc, home, here = _dirs(tmp_path)
    dirs = (str(etc), str(home), str(here))
    assert find_default(dirs) is None
    (here / "gost.yml").write_text("")
    assert find_default(dirs) == str(here / "gost.yml")
    (home / "gost.yaml").write_text("")
    assert find_default(dirs) == str(home / "gost.yaml")
    (home / "gost.json").write_text("")  # json comes before yaml in viper's list
    assert find_default(dirs) == str(home / "gost.json")
    (etc / "gost.yml").write_text("")
    assert find_default(dirs) == str(etc / "gost.yml")


def test_default_in_another_viper_format_is_refused(tmp_path) -> None:
    etc, home, here = _dirs(tmp_path)
    (etc / "gost.toml").write_text("")
    (here / "gost.yaml").write_text("")
    with pytest.raises(ConfigError) as exc:
        find_default((str(etc), str(home), str(here)))
    assert exc.value.path == str(etc / "gost.toml")
    assert "toml config files are not supported by gostfast" in exc.value.message

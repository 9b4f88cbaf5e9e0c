"""Where a config comes from: -C inline JSON, and GOST's default gost.<ext> search."""

from __future__ import annotations

import http.server
import io

import pytest
from servers import serving

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


def test_stdin(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("services: [{name: from-stdin, addr: ':1'}]\n"))
    assert load_source("-").services[0].name == "from-stdin"


class _Config(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        private = self.path == "/private.yaml"
        authorized = self.headers.get("Authorization") == "Basic dTpzZWNyZXQ="  # u:secret
        if self.path == "/gost.yaml" or (private and authorized):
            body = b"services: [{name: from-url, addr: ':1'}]\n"
            self.send_response(200)
        else:
            body = b"no"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def config_server():
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Config)) as port:
        yield port


def test_http_url(config_server) -> None:
    cfg = load_source(f"http://127.0.0.1:{config_server}/gost.yaml")
    assert cfg.services[0].name == "from-url"


def test_http_url_userinfo_is_basic_auth(config_server) -> None:
    cfg = load_source(f"http://u:secret@127.0.0.1:{config_server}/private.yaml")
    assert cfg.services[0].name == "from-url"


def test_http_url_error_names_the_url_without_credentials(config_server) -> None:
    with pytest.raises(ConfigError) as exc:
        load_source(f"http://u:secret@127.0.0.1:{config_server}/missing.yaml")
    assert exc.value.path == f"http://127.0.0.1:{config_server}/missing.yaml"
    assert exc.value.message.startswith("fetching the config: HTTP 404")
    assert "secret" not in str(exc.value)

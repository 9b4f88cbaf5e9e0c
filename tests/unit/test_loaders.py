"""The loaders' parts on their own: GOST's entry formats, the YAML keys, reload rules.

Sources are real: files in a temporary directory, an HTTP server on loopback
(the Redis source is exercised against a real redis-server in
tests/e2e/test_loaders.py).
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import pytest
from loader_support import ListServer
from support import free_port

from gostfast.chain.bypass import Bypass
from gostfast.config.errors import ConfigError
from gostfast.config.model import Auth, BypassConfig, LimiterConfig, LoaderConfig
from gostfast.config.yaml import load_text
from gostfast.limits import ConnLimiter
from gostfast.loaders.entries import PARSERS
from gostfast.loaders.live import LiveList, LiveLists
from gostfast.loaders.sources import HTTPSource, LoadError, redact_url


def _parse(section: str, raw):
    bad: list[tuple[str, str]] = []
    out = PARSERS[section][1](raw, lambda entry, why: bad.append((entry, why)))
    return out, bad


def test_auther_lines_and_hash_as_gost() -> None:
    lines = ["# user password", "", "admin   #123456", "test\\user001\t123456", "nopass"]
    auths, bad = _parse("authers", lines)
    assert auths == (Auth("admin", "#123456"), Auth("test\\user001", "123456"), Auth("nopass"))
    assert bad == []
    auths, bad = _parse("authers", {"u1": "p1", " ": "secret"})
    assert auths == (Auth("u1", "p1"),)
    assert bad == [("(an empty user name)", "a user needs a name")]  # no password named


def test_matcher_lines_strip_comments_and_refuse_inner_spaces() -> None:
    out, bad = _parse("bypasses", ["127.0.0.1", "*.example.com # a glob", "  ", "10.0.0.0/8 x"])
    assert out == ("127.0.0.1", "*.example.com")
    assert bad == [("10.0.0.0/8 x", "one matcher per line (it has a space inside)")]


def test_hosts_lines_read_an_etc_hosts_file() -> None:
    out, bad = _parse(
        "hosts", ["127.0.0.1\tlocalhost  lo # both", "::1 ip6-localhost", "999.1.1.1 x", "1.2.3.4"]
    )
    assert out == (("localhost", "127.0.0.1"), ("lo", "127.0.0.1"), ("ip6-localhost", "::1"))
    assert [b[0] for b in bad] == ["999.1.1.1 x", "1.2.3.4"]


def test_limit_lines_are_checked_as_the_config_checks_them() -> None:
    out, bad = _parse("climiters", ["$ 10", "$$\t2 # per IP", "10.0.0.0/8 many", "$ 0"])
    assert out == ("$ 10", "$$ 2")
    assert [b[0] for b in bad] == ["10.0.0.0/8 many", "$ 0"]
    out, bad = _parse("limiters", ["$ 1MB 2MB", "$$ 100000"])
    assert out == ("$ 1MB 2MB",) and bad[0][0] == "$$ 100000"


def test_yaml_loader_keys_defaults_and_clamping() -> None:
    cfg = load_text(
        "bypasses: [{name: b, reload: 100ms, redis: {addr: '127.0.0.1:6379'}}]\n"
        "hosts: [{name: h, redis: {addr: 'r:1', db: 2, key: k, type: list}, "
        "http: {url: 'http://x/h', timeout: 3s}}]\n"
        "authers: [{name: a, file: {path: /tmp/u}}]\n"
        "services: [{addr: ':1', bypass: b, hosts: h, handler: {type: http, auther: a}}]"
    )
    svc = cfg.services[0]
    b = svc.bypass[0].loader
    assert (b.reload, b.redis.key, b.redis.type, b.redis.db) == (1.0, "gost", "set", 0)
    h = svc.hosts.loader
    assert (h.redis.addr, h.redis.db, h.redis.key, h.redis.type) == ("r:1", 2, "k", "list")
    assert (h.http.url, h.http.timeout, h.reload) == ("http://x/h", 3.0, 0.0)
    assert svc.handler.authers[0].loader == LoaderConfig(file="/tmp/u")


def test_yaml_loader_errors_name_the_path() -> None:
    for text, path, msg in [
        ("authers: [{name: a, redis: {addr: x, type: set}}]", "authers[0].redis.type", "hash"),
        ("hosts: [{name: h, http: {url: 'x'}}]", "hosts[0].http.url", "http:// or https://"),
        ("admissions: [{name: a, redis: {addr: x, db: one}}]", "admissions[0].redis.db", "integer"),
        (
            "rlimiters: [{name: r, reload: soon, file: {path: x}}]",
            "rlimiters[0].reload",
            "duration",
        ),
    ]:
        with pytest.raises(ConfigError) as e:
            load_text(text + "\nservices: [{addr: ':1'}]")
        assert (e.value.path, msg in e.value.message) == (path, True), str(e.value)


def test_reload_without_a_source_is_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, "gostfast.config"):
        cfg = load_text("bypasses: [{name: b, reload: 5s}]\nservices: [{addr: ':1', bypass: b}]")
    assert cfg.services[0].bypass[0].loader is None
    assert "bypasses[0]: 'reload' without file, redis or http" in caplog.text


def test_a_live_list_keeps_each_sources_last_good_entries(tmp_path, caplog) -> None:
    good, gone = tmp_path / "good.txt", tmp_path / "gone.txt"
    good.write_text("10.0.0.1\n")
    base = BypassConfig("b", ("192.0.2.1",), loader=LoaderConfig(file=str(good)))
    live = LiveList("bypasses", base)
    seen: list[tuple[str, ...]] = []
    part = Bypass([base])  # the runtime part kept current: followed while it lives
    live.add_follower(part, lambda _part: seen.append(live.value.matchers))

    async def run() -> None:
        await live.load()
        await live.load()  # unchanged: nobody is told
        good.write_text("10.0.0.2\nbad one\n")
        await live.load()
        await live.load()  # the bad entry is reported once
        good.rename(gone)  # the file goes away: the last good stay
        await live.load()

    with caplog.at_level(logging.INFO, "gostfast.loader"):
        asyncio.run(run())
    assert seen == [("192.0.2.1", "10.0.0.1"), ("192.0.2.1", "10.0.0.2")]
    assert live.value.matchers == ("192.0.2.1", "10.0.0.2")
    assert caplog.text.count("entry 'bad one' skipped") == 1
    assert f"bypass b: file {good}: No such file or directory; keeping its last good" in caplog.text


def test_follow_rebuilds_a_part_from_every_list_it_uses(tmp_path) -> None:
    f = tmp_path / "l.txt"
    f.write_text("$ 5\n")
    lim = LimiterConfig("c", ("$ 1",), LoaderConfig(file=str(f)))
    lists = LiveLists()
    lists.lists[("climiters", "c")] = LiveList("climiters", lim)
    limiter = ConnLimiter(lists.current("climiters", lim))
    lists.follow("climiters", [lim], limiter, lambda part, cfgs: part.reset(cfgs[0]))
    held = limiter.acquire("10.0.0.1")
    assert held is not None and limiter.acquire("10.0.0.1") is None  # "$ 1"
    asyncio.run(lists.load_all())  # now "$ 1" then "$ 5": the later line wins
    assert lists.current("climiters", lim).limits == ("$ 1", "$ 5")
    taken = [limiter.acquire("10.0.0.1") for _ in range(5)]
    assert all(taken[:4]) and taken[4] is None  # the open one still counts: 1 + 4 = 5
    held()
    assert limiter.acquire("10.0.0.1") is not None


def test_http_source_reads_a_200_body_and_names_failures_without_credentials() -> None:
    web = ListServer()
    try:
        web.set("/l", "a\nb\n")
        src = HTTPSource(type("H", (), {"url": web.url("/l"), "timeout": 2.0})(), 0)
        assert asyncio.run(src.read()) == ["a", "b"]
        web.set("/l", "x", status=503)
        with pytest.raises(LoadError, match=r"503"):
            asyncio.run(src.read())
        dead = HTTPSource(
            type("H", (), {"url": f"http://u:secret@127.0.0.1:{free_port()}/", "timeout": 2})(), 0
        )
        with pytest.raises(LoadError) as e:
            asyncio.run(dead.read())
        assert "secret" not in str(e.value) and "refused" in str(e.value).lower()
    finally:
        web.close()


def test_redact_url() -> None:
    assert redact_url("http://u:p@h:8/x?q") == "http://h:8/x?q"
    assert redact_url("https://h/x") == "https://h/x"


def test_check_shows_loaders_without_their_secrets() -> None:
    from gostfast.cli import describe
    from gostfast.service import plan

    cfg = load_text(
        "authers: [{name: a, redis: {addr: 'r:1', password: redis-secret}}]\n"
        "bypasses: [{name: b, http: {url: 'http://u:url-secret@h/b'}, reload: 5s}]\n"
        "services: [{addr: '127.0.0.1:1', bypass: b, handler: {type: http, auther: a}}]"
    )
    text = repr(describe(plan(cfg)))
    assert "redis-secret" not in text and "url-secret" not in text
    assert "'http': {'url': 'http://h/b'" in text and "'reload': '5s'" in text
    assert "'password': '***'" in text


def test_redis_source_reads_each_type_from_a_real_redis() -> None:
    from loader_support import RedisServer

    from gostfast.config.model import RedisLoaderConfig
    from gostfast.loaders.sources import RedisSource, _host_port

    assert _host_port("10.0.0.1:7000") == ("10.0.0.1", 7000)
    assert _host_port("[::1]:7001") == ("::1", 7001)
    assert _host_port("redis.internal") == ("redis.internal", 6379)
    assert _host_port(":6380") == ("127.0.0.1", 6380)
    server = RedisServer("pw")
    try:
        c = server.client
        c.sadd("s", "b", "a")
        c.rpush("l", "2", "1")
        c.hset("h", mapping={"u": "p"})
        c.set("str", "x")

        async def read(key: str, type_: str):
            src = RedisSource(RedisLoaderConfig(server.addr, password="pw", key=key, type=type_), 1)
            try:
                return await src.read()
            finally:
                await src.close()

        assert asyncio.run(read("s", "set")) == ["a", "b"]
        assert asyncio.run(read("l", "list")) == ["2", "1"]  # a list keeps its order
        assert asyncio.run(read("h", "hash")) == {"u": "p"}
        assert asyncio.run(read("missing", "set")) == []
        with pytest.raises(LoadError, match="WRONGTYPE"):
            asyncio.run(read("str", "set"))
        src = RedisSource(RedisLoaderConfig(server.addr, password="wrong", key="s"), 1)
        with pytest.raises(LoadError) as e:
            asyncio.run(src.read())
        assert "wrong" not in str(e.value).replace("WRONGPASS", "")
        asyncio.run(src.close())
    finally:
        server.stop()


def test_a_traffic_limiter_reset_applies_to_the_next_tunnel_only() -> None:
    from gostfast.traffic import TrafficLimiter

    lim = TrafficLimiter(LimiterConfig("l"))
    assert not lim.active and lim.open(object(), "10.0.0.1") is None
    lim.reset(LimiterConfig("l", ("$ 1MB 2MB",)))
    gate = lim.open(object(), "10.0.0.1")
    assert lim.active and gate is not None
    lim.reset(LimiterConfig("l", ()))  # the open tunnel keeps its gate; new ones get none
    assert not lim.active and lim.open(object(), "10.0.0.1") is None
    assert gate is not None


def test_a_part_dropped_by_a_change_is_no_longer_followed(tmp_path) -> None:
    """Each web-API change rebuilds its handlers and so follows the kept lists again:
    the old parts, once dropped, must not be rebuilt (nor held) at every reload."""
    f = tmp_path / "l.txt"
    f.write_text("$ 5\n")
    lim = LimiterConfig("c", ("$ 1",), LoaderConfig(file=str(f)))
    lists = LiveLists()
    live = lists.lists[("climiters", "c")] = LiveList("climiters", lim)
    rebuilt: list[str] = []
    for name in ("old", "new"):
        limiter = ConnLimiter(lists.current("climiters", lim))
        lists.follow("climiters", [lim], limiter, lambda part, cfgs, n=name: rebuilt.append(n))
        if name == "old":
            old = weakref.ref(limiter)
            del limiter  # what a change does to the handler it replaces
    assert old() is None
    asyncio.run(lists.load_all())
    assert rebuilt == ["new"]
    assert len(live._followers) == 1

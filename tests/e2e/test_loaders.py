"""GOST's loaders (file, redis, http) on running gostfast processes, with real servers.

Redis is Debian's redis-server, started here on a loopback port; the http
loader reads from a real local HTTP server; the tunnels are real CONNECTs
through gostfast's http proxy to echo servers, their bytes checked. A
reloaded list takes effect for new connections within its reload period,
and open tunnels are left alone.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
from loader_support import ListServer, RedisServer, eventually, log_lines, proxy_connect
from proxy_support import TCPServer, echo, is_closed, recv_exactly
from support import Procs, free_port

RELOAD = 1  # seconds: GOST's shortest reload period
OK = b"HTTP/1.1 200 "
DENIED = b"HTTP/1.1 407 "
FORBIDDEN = b"HTTP/1.1 403 "


def _answer(port: int, target: str, user: str = "", password: str = "") -> bytes:
    """The first line of the proxy's answer; for a 200 the echo is checked, byte for byte."""
    payload = os.urandom(4096)
    try:
        head, rest = proxy_connect(port, target, user, password, payload)
    except (ConnectionError, AssertionError):  # closed with no answer (a limit, an EOF)
        return b"closed\r\n"
    if head.startswith(OK):
        assert rest == payload
    return head.split(b"\r\n", 1)[0] + b"\r\n"


def _hold(port: int, target: str) -> socket.socket | None:
    """A tunnel through the plain http proxy on ``port``, left open; None if refused."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    try:
        if recv_exactly(s, len(OK)) == OK:
            return s
    except (ConnectionError, AssertionError):
        pass
    s.close()
    return None


def _is(port, target, status, user="", password="") -> bool:
    return _answer(port, target, user, password).startswith(status)


@pytest.fixture
def targets():
    a, b = TCPServer(echo), TCPServer(echo)
    yield f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    a.close()
    b.close()


REDIS_PASSWORD = "r-pass-9"


def _redis_config(
    redis_addr: str, port: int, guarded: int, password: str = REDIS_PASSWORD, ws: int = 0
) -> str:
    redis = f'addr: "{redis_addr}", password: "{password}"'
    text = f"""
authers:
- name: shared-users
  reload: {RELOAD}s
  auths: [{{username: local, password: pw0}}]
  redis: {{{redis}, key: "gost:authers:shared"}}
bypasses:
- name: shared-bypass
  reload: {RELOAD}s
  redis: {{{redis}, key: "gost:bypasses:shared"}}
admissions:
- name: shared-admission
  reload: {RELOAD}s
  redis: {{{redis}, key: "gost:admissions:shared"}}
hosts:
- name: shared-hosts
  reload: {RELOAD}s
  redis: {{{redis}, key: "gost:hosts:shared", type: list}}
services:
- name: proxy
  addr: "127.0.0.1:{port}"
  bypass: shared-bypass
  hosts: shared-hosts
  handler: {{type: http, auther: shared-users}}
- name: guarded
  addr: "127.0.0.1:{guarded}"
  admission: shared-admission
  handler: {{type: http}}
"""
    if ws:  # services: is the last key
        text += f"""- name: over-ws
  addr: "127.0.0.1:{ws}"
  listener: {{type: ws}}
  handler: {{type: http, auther: shared-users}}
"""
    return text


def _through_ws(port: int) -> bool | None:
    """Bytes through the client gostfast on ``port`` (tcp -> ws -> the server's http
    handler -> the echo target): True when they all come back, None when refused."""
    payload = os.urandom(50_000)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            s.sendall(payload)
            back = recv_exactly(s, len(payload))
    except (ConnectionError, AssertionError, TimeoutError):
        return None
    assert back == payload
    return True


def _from(source_ip: str, port: int, target: str) -> bool:
    """Whether a CONNECT from ``source_ip`` through the service on ``port`` is served."""
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source_ip, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        try:
            return recv_exactly(s, len(OK)) == OK
        except (ConnectionError, AssertionError):
            return False


@pytest.fixture
def redis_server():
    server = RedisServer(REDIS_PASSWORD)
    yield server
    server.stop()


def _start(procs: Procs, tmp_path, name: str, text: str, ports: list[int]):
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(text)
    return procs.gostfast("-C", str(cfg), wait_ports=ports)


def test_two_instances_share_users_bypasses_and_admissions_through_one_redis(
    tmp_path, redis_server, targets
):
    target_a, target_b = targets
    procs = Procs()
    ports, guarded = [free_port(), free_port()], [free_port(), free_port()]
    ws, fronts = [free_port(), free_port()], [free_port(), free_port()]
    try:
        gosts = []
        for i in range(2):
            cfg = _redis_config(redis_server.addr, ports[i], guarded[i], ws=ws[i])
            gosts.append(_start(procs, tmp_path, f"g{i}", cfg, [ports[i], guarded[i], ws[i]]))
            # a GOST-style client in front: tcp forward to A, over ws, logging in as carol
            procs.gostfast(
                "-L", f"tcp://127.0.0.1:{fronts[i]}/{target_a}",
                "-F", f"http+ws://carol:s3cret@127.0.0.1:{ws[i]}",
                wait_ports=[fronts[i]],
            )  # fmt: skip
        instances = list(zip(ports, guarded, fronts, strict=True))
        for p, g, f in instances:  # before: carol is nobody, B is open, 127.0.0.3 comes in
            assert _is(p, target_a, DENIED, "carol", "s3cret")
            assert _through_ws(f) is None
            assert _is(p, target_b, OK, "local", "pw0")
            assert _from("127.0.0.3", g, target_a)
        # a tunnel open before the change, to the target about to be bypassed
        with socket.create_connection(("127.0.0.1", ports[0]), timeout=10) as held:
            held.sendall(
                f"CONNECT {target_b} HTTP/1.1\r\nHost: {target_b}\r\n"
                "Proxy-Authorization: Basic bG9jYWw6cHcw\r\n\r\n".encode()  # local:pw0
            )
            assert recv_exactly(held, len(OK)) == OK
            redis_server.client.hset("gost:authers:shared", "carol", "s3cret")
            redis_server.client.sadd("gost:bypasses:shared", target_b)
            redis_server.client.sadd("gost:admissions:shared", "127.0.0.3")
            for p, g, f in instances:  # both instances, within their reload period
                eventually(lambda p=p: _is(p, target_a, OK, "carol", "s3cret"), f"carol on {p}")
                eventually(lambda f=f: _through_ws(f), f"carol over ws via {f}")
                eventually(
                    lambda p=p: _is(p, target_b, FORBIDDEN, "carol", "s3cret"), f"bypass {p}"
                )
                eventually(lambda g=g: not _from("127.0.0.3", g, target_a), f"admission {g}")
                assert _from("127.0.0.1", g, target_a)  # the other clients still come in
                assert _is(p, target_a, OK, "local", "pw0")  # the config's own user stays
            held.recv(65536)  # the rest of the 200 head
            payload = os.urandom(10000)
            held.sendall(payload)
            assert recv_exactly(held, len(payload)) == payload  # the open tunnel goes on
        # a user removed from Redis is refused again, on both
        redis_server.client.hdel("gost:authers:shared", "carol")
        for p, _, f in instances:
            eventually(lambda p=p: _is(p, target_a, DENIED, "carol", "s3cret"), f"carol gone {p}")
            eventually(lambda f=f: _through_ws(f) is None, f"carol gone over ws via {f}")
        for g in gosts:
            text = "\n".join(log_lines(g, ""))
            assert "s3cret" not in text and REDIS_PASSWORD not in text, "a password in the log"
    finally:
        procs.stop_all()


def test_an_unreachable_redis_keeps_the_last_good_list_and_says_so_once_a_period(
    tmp_path, redis_server, targets
):
    target_a, target_b = targets
    redis_server.client.hset("gost:authers:shared", "dave", "pw-d")
    redis_server.client.sadd("gost:bypasses:shared", target_b, "10.0.0.0/8 junk")
    redis_server.client.rpush("gost:hosts:shared", "127.0.0.1 echo.redis.test")
    procs = Procs()
    port, guarded = free_port(), free_port()
    port_a = target_a.rsplit(":", 1)[1]
    try:
        cfg = _redis_config(redis_server.addr, port, guarded)
        gost = _start(procs, tmp_path, "g", cfg, [port, guarded])
        assert _is(port, target_a, OK, "dave", "pw-d")
        assert _is(port, f"echo.redis.test:{port_a}", OK, "dave", "pw-d")  # a list's hosts
        assert _is(port, target_b, FORBIDDEN, "dave", "pw-d")
        # the malformed entry: logged with the list, the key and the entry, and skipped
        # (the entry next to it still counts); once, not at every reload
        bad = log_lines(gost, "entry '10.0.0.0/8 junk' skipped")
        assert len(bad) == 1 and "gost:bypasses:shared" in bad[0] and "shared-bypass" in bad[0]
        time.sleep(3 * RELOAD)
        assert len(log_lines(gost, "entry '10.0.0.0/8 junk' skipped")) == 1
        redis_server.stop()
        stopped = time.monotonic()
        eventually(lambda: log_lines(gost, "auther shared-users: redis"), "a warning")
        time.sleep(3 * RELOAD)
        warned = log_lines(gost, "auther shared-users: redis")
        periods = (time.monotonic() - stopped) / RELOAD
        assert 1 <= len(warned) <= periods + 1, warned  # once per reload period
        assert "keeping its last good entries" in warned[0]
        assert _is(port, target_a, OK, "dave", "pw-d")  # the last good users
        assert _is(port, target_b, FORBIDDEN, "dave", "pw-d")  # and bypass
        assert _is(port, f"echo.redis.test:{port_a}", OK, "dave", "pw-d")  # and hosts
        assert gost.poll() is None
    finally:
        procs.stop_all()


def test_file_loaders_for_every_kind_of_list(tmp_path, targets):
    target_a, target_b = targets
    port_a = target_a.rsplit(":", 1)[1]
    files = {n: tmp_path / f"{n}.txt" for n in ("users", "bypass", "hosts", "deny", "conns")}
    files["users"].write_text("# user password\nerin pw-e\n")
    files["bypass"].write_text("# nothing bypassed yet\n")
    files["hosts"].write_text("127.0.0.1 echo.loader.test\t alias.loader.test # two names\n")
    files["deny"].write_text("")
    files["conns"].write_text("$ 1\n")
    proxy, guarded, limited = free_port(), free_port(), free_port()

    def loader(name: str) -> str:
        return f"reload: {RELOAD}s, file: {{path: '{files[name]}'}}"

    text = f"""
authers: [{{name: users, {loader("users")}}}]
bypasses: [{{name: bp, {loader("bypass")}}}]
hosts: [{{name: names, {loader("hosts")}}}]
admissions: [{{name: deny, {loader("deny")}}}]
climiters: [{{name: conns, {loader("conns")}}}]
services:
- {{name: proxy, addr: "127.0.0.1:{proxy}", bypass: bp, hosts: names,
   handler: {{type: http, auther: users}}}}
- {{name: guarded, addr: "127.0.0.1:{guarded}", admission: deny, handler: {{type: http}}}}
- {{name: limited, addr: "127.0.0.1:{limited}", climiter: conns, handler: {{type: http}}}}
"""
    procs = Procs()
    try:
        gost = _start(procs, tmp_path, "g", text, [proxy, guarded, limited])
        assert _is(proxy, f"echo.loader.test:{port_a}", OK, "erin", "pw-e")  # hosts, users
        assert _is(proxy, f"alias.loader.test:{port_a}", OK, "erin", "pw-e")
        assert _is(proxy, target_b, OK, "erin", "pw-e")
        assert _is(guarded, target_a, OK)
        files["users"].write_text("erin pw-new\n")
        files["bypass"].write_text(f"{target_b}  # now bypassed\n")
        files["deny"].write_text("127.0.0.0/8\n")
        eventually(lambda: _is(proxy, target_a, OK, "erin", "pw-new"), "erin's new password")
        assert _is(proxy, target_a, DENIED, "erin", "pw-e")
        eventually(lambda: _is(proxy, target_b, FORBIDDEN, "erin", "pw-new"), "the bypass")

        def denied() -> bool:
            with socket.create_connection(("127.0.0.1", guarded), timeout=10) as s:
                s.sendall(f"CONNECT {target_a} HTTP/1.1\r\n\r\n".encode())
                return is_closed(s, 10)

        eventually(denied, "the admission")
        # the connection limiter: one tunnel open holds the only slot of "$ 1" ...
        with socket.create_connection(("127.0.0.1", limited), timeout=10) as first:
            first.sendall(f"CONNECT {target_a} HTTP/1.1\r\n\r\n".encode())
            assert recv_exactly(first, len(OK)) == OK
            with socket.create_connection(("127.0.0.1", limited), timeout=10) as second:
                assert is_closed(second, 10)
            files["conns"].write_text("$ 2\n")  # ... and it still counts after a reload:
            eventually(lambda: _is(limited, target_a, OK), "the raised limit")
            # the probe's slot is freed once gostfast sees it close: hold a second one
            second = eventually(lambda: _hold(limited, target_a), "a second slot")
            with second:
                assert _answer(limited, target_a) == b"closed\r\n"  # no third
        # a file that goes away: said, and the last good entries kept
        files["users"].unlink()
        eventually(lambda: log_lines(gost, f"file {files['users']}: No such file"), "warning")
        assert _is(proxy, target_a, OK, "erin", "pw-new")
        assert gost.poll() is None
    finally:
        procs.stop_all()


def test_http_loaders_and_a_failing_url(tmp_path, targets):
    target_a, target_b = targets
    web = ListServer()
    web.set("/users", "frank pw-f\n")
    web.set("/bypass", f"{target_b}\n")
    port = free_port()
    text = f"""
authers: [{{name: users, reload: {RELOAD}s, http: {{url: "{web.url("/users")}", timeout: 5s}}}}]
bypasses: [{{name: bp, reload: {RELOAD}s, http: {{url: "{web.url("/bypass")}"}}}}]
services:
- {{name: proxy, addr: "127.0.0.1:{port}", bypass: bp, handler: {{type: http, auther: users}}}}
"""
    procs = Procs()
    try:
        gost = _start(procs, tmp_path, "g", text, [port])
        assert _is(port, target_a, OK, "frank", "pw-f")
        assert _is(port, target_b, FORBIDDEN, "frank", "pw-f")
        web.set("/users", "frank pw-f\ngrace pw-g\n")
        web.set("/bypass", "# nothing\n")
        eventually(lambda: _is(port, target_a, OK, "grace", "pw-g"), "grace")
        eventually(lambda: _is(port, target_b, OK, "grace", "pw-g"), "the bypass lifted")
        web.set("/users", "oops\n", status=500)
        # the loader's warning names the status (an access line may hold "500" in a port)
        failed = eventually(lambda: log_lines(gost, ": 500 "), "the failed GET logged")
        assert "keeping its last good entries (2)" in failed[0]
        assert _is(port, target_a, OK, "grace", "pw-g")
    finally:
        procs.stop_all()
        web.close()


def test_a_wrong_redis_password_is_logged_without_it(tmp_path, redis_server, targets):
    target_a, _ = targets
    redis_server.client.hset("gost:authers:shared", "hank", "pw-h")
    procs = Procs()
    port, guarded = free_port(), free_port()
    try:
        cfg = _redis_config(redis_server.addr, port, guarded, password="not-the-pass")
        gost = _start(procs, tmp_path, "g", cfg, [port, guarded])
        warned = eventually(lambda: log_lines(gost, "auther shared-users: redis"), "a warning")
        assert "keeping its last good entries (0)" in warned[0]
        assert _is(port, target_a, DENIED, "hank", "pw-h")  # nothing was loaded
        assert _is(port, target_a, OK, "local", "pw0")  # the config's own user is there
        assert "not-the-pass" not in "\n".join(log_lines(gost, ""))
    finally:
        procs.stop_all()


def test_every_worker_polls_the_lists(tmp_path, redis_server, targets):
    target_a, _ = targets
    procs = Procs()
    port, guarded = free_port(), free_port()
    try:
        cfg = tmp_path / "g.yaml"
        cfg.write_text(_redis_config(redis_server.addr, port, guarded))
        procs.gostfast("--workers", "2", "-C", str(cfg), wait_ports=[port, guarded])
        assert _is(port, target_a, DENIED, "ivy", "pw-i")
        redis_server.client.hset("gost:authers:shared", "ivy", "pw-i")
        eventually(lambda: _is(port, target_a, OK, "ivy", "pw-i"), "ivy")
        # the kernel spreads connections over both workers: each must know ivy by now
        # (within a period of the first that did)
        time.sleep(2 * RELOAD)
        assert all(_is(port, target_a, OK, "ivy", "pw-i") for _ in range(20))
    finally:
        procs.stop_all()

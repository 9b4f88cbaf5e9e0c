"""The access log line per request, in GOST's json format, for a ws listener behind a proxy.

What ``client`` is there (GOST's x/listener/ws: the address CF-Connecting-IP, else the
first X-Forwarded-For entry, else X-Real-IP names; else the TCP peer) and ``remote``
(always the TCP peer), checked on the json lines a real gostfast writes.
"""

from __future__ import annotations

import json
import os
import time

from metrics_support import FORWARDED, Echo, echo_through, ws_echo_forwarded
from support import free_port, output


def _access_lines(proc) -> list[dict]:
    lines = []
    for ln in output(proc).splitlines():
        if ln.startswith("{"):
            entry = json.loads(ln)
            if " >< " in entry["msg"]:
                lines.append(entry)
    return lines


def test_json_access_lines_name_the_forwarded_client(procs, tmp_path) -> None:
    echo = Echo()
    try:
        ws, tcp = free_port(), free_port()
        cfg = tmp_path / "gost.yaml"
        cfg.write_text(
            "services:\n"
            f"- name: behind-proxy\n  addr: 127.0.0.1:{ws}\n"
            "  handler: {type: forward}\n  listener: {type: ws}\n"
            f"  forwarder: {{nodes: [{{name: echo, addr: '127.0.0.1:{echo.port}'}}]}}\n"
            f"- name: plain\n  addr: 127.0.0.1:{tcp}\n"
            "  handler: {type: tcp}\n  listener: {type: tcp}\n"
            f"  forwarder: {{nodes: [{{name: echo, addr: '127.0.0.1:{echo.port}'}}]}}\n"
            "log: {format: json}\n"
        )
        proc = procs.gostfast("-C", str(cfg), wait_ports=[ws, tcp])
        client_port = ws_echo_forwarded(ws, os.urandom(4321))
        echo_through(tcp, b"q" * 1234)
        end = _access_lines(proc)
        for _ in range(200):  # each line is written as its request ends
            if len(end) == 2:
                break
            time.sleep(0.1)
            end = _access_lines(proc)
        by_service = {e["service"]: e for e in end}
        assert set(by_service) == {"behind-proxy", "plain"}, output(proc)
        fwd = by_service["behind-proxy"]
        assert fwd["client"] == FORWARDED  # what the proxy said, as GOST's client field
        assert fwd["remote"] == f"127.0.0.1:{client_port}"  # the TCP peer, never a header
        assert (fwd["inputBytes"], fwd["outputBytes"]) == (4321, 4321)
        assert fwd["dst"] == f"127.0.0.1:{echo.port}" and fwd["route"] == "direct"
        assert isinstance(fwd["duration"], int) and fwd["duration"] > 0  # ns, as slog's json
        assert fwd["level"] == "info" and fwd["logger"] == "gostfast.service.behind-proxy"
        assert "error" not in fwd
        plain = by_service["plain"]
        assert plain["client"] == plain["remote"]  # no proxy: the TCP peer
        assert (plain["inputBytes"], plain["outputBytes"]) == (1234, 1234)
    finally:
        echo.close()

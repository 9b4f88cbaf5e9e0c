"""Start-up stays cheap: ``gostfast -V`` imports click and the codecs, not the service.

What a command imports is behaviour (asserted here); how long it takes is a
number for bench/ (``python -X importtime``), not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys

from gostfast import cli
from gostfast.config import gost_output

# run in a child: this process has imported everything already
_PROBE = """
import json, sys
del sys.path[0]
from gostfast.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("asyncio", "ssl", "urllib.request", "http.client", "uvloop", "gostfast.service")


def _modules_after(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_version_imports_no_service_layer():
    mods = _modules_after("-V")
    assert "click" in mods
    assert not [m for m in HEAVY if m in mods]
    assert "yaml" not in mods  # PyYAML is for -C and check, not -V


def test_check_of_a_file_does_not_import_urllib_request(tmp_path):
    conf = tmp_path / "gost.yaml"
    conf.write_text(
        "services:\n- name: s\n  addr: 127.0.0.1:0\n  handler: {type: tcp}\n"
        "  listener: {type: tcp}\n  forwarder: {nodes: [{name: t, addr: 127.0.0.1:1}]}\n"
    )
    mods = _modules_after("check", "-C", str(conf))
    assert "gostfast.service" in mods  # it did plan the config
    assert "urllib.request" not in mods and "http.client" not in mods


def test_output_formats_match_gost_output():
    assert cli.OUTPUT_FORMATS == gost_output.FORMATS

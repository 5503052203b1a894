"""Where running ``prov ui`` servers are recorded (``.git/prov/ui/<pid>.json``): servers
starting at the same moment all stay listed, the first started is the one ``Run.url``
names, and what a server leaves behind when it is gone is ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gitprov._util import ui_address

# each process waits for the gate file, then records its address at once and holds
# it until its stdin closes
SERVER = textwrap.dedent("""
    import os, sys, time
    from gitprov._util.ui_address import forget_url, remember_url
    prov_dir, gate, url = sys.argv[1:]
    while not os.path.exists(gate):
        time.sleep(0.001)
    remember_url(prov_dir, url)
    print("up", flush=True)
    sys.stdin.read()
    forget_url(prov_dir, url)
""")


def test_servers_starting_at_once_are_all_recorded(tmp_path: Path) -> None:
    prov_dir, gate = str(tmp_path / "prov"), tmp_path / "gate"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ui_address.__file__).parents[2]),
                                                         os.environ.get("PYTHONPATH", "")])}
    urls = [f"http://127.0.0.1:{9000 + i}/" for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-c", SERVER, prov_dir, str(gate), url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for url in urls]
    try:
        time.sleep(0.5)  # all of them waiting at the gate
        gate.write_text("go")
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        listed = ui_address.servers(prov_dir)
        assert sorted(str(s["url"]) for s in listed) == urls
        assert {s["pid"] for s in listed} == {p.pid for p in procs}
        assert ui_address.ui_url(prov_dir) == listed[0]["url"]
        assert [int(str(s["started"])) for s in listed] == sorted(int(str(s["started"])) for s in listed)
    finally:
        for proc in procs:
            proc.communicate("", timeout=30)
    assert ui_address.servers(prov_dir) == []
    assert os.listdir(os.path.join(prov_dir, "ui")) == []
    assert ui_address.ui_url(prov_dir) == ui_address.DEFAULT_URL


def test_a_dead_servers_file_and_junk_are_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "ui"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = folder / f"{dead.stdout.strip()}.json"
    gone.write_text(json.dumps({"url": "http://127.0.0.1:1/", "pid": int(dead.stdout), "started": "1"}))
    (folder / "junk.json").write_text("{not json")
    (folder / "file.json").write_text(json.dumps({"url": "file:///etc/passwd", "pid": os.getpid()}))
    assert ui_address.ui_url(str(tmp_path)) == ui_address.DEFAULT_URL
    assert not gone.exists()  # cleaned up
    ui_address.remember_url(str(tmp_path), "http://127.0.0.1:8471/")
    assert ui_address.ui_url(str(tmp_path)) == "http://127.0.0.1:8471/"
    ui_address.forget_url(str(tmp_path), "http://127.0.0.1:8471/")
    assert ui_address.ui_url(str(tmp_path)) == ui_address.DEFAULT_URL
    assert ui_address.ui_url(None) == ui_address.DEFAULT_URL

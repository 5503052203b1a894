"""prov fetch / pull / push over smart HTTP: ``git http-backend`` behind a small threaded
HTTP server on 127.0.0.1, started and stopped by each test (optionally asking for basic
authentication, optionally refusing pushes).

Clones exchange runs through it and converge; credentials given in a URL reach the
server but are never stored by prov (config, ref names, reflogs, objects, its own files,
its messages); a remote that cannot be reached, rejects the password or refuses pushes
fails with exit code 11 and one line.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange.clones import (
    LEDGER,
    assert_converged,
    assert_valid,
    clone,
    ledger_run_ids,
    ledger_tree,
    make_run,
    prov_ok,
    prov_refs,
    seed_bare,
)
from tests.exchange.test_transports import (
    _assert_one_line_exit_11,
    _free_port,
    _without_keep,
    at_once,
)

pytestmark = pytest.mark.gitbin

USER, PASSWORD = "alice-8f3k", "s3cret-Zq71-pw"


def _http_backend() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    return os.path.join(exec_path, "git-http-backend")


class _Handler(BaseHTTPRequestHandler):
    """Every request: the basic-auth check, then ``git http-backend`` as a CGI."""

    server: GitHttpServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._cgi()

    def do_POST(self) -> None:  # noqa: N802
        self._cgi()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (quiet)
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # git's large POSTs
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _cgi(self) -> None:
        srv = self.server
        auth = self.headers.get("Authorization")
        path, _, query = self.path.partition("?")
        with srv.lock:
            srv.requests.append((self.command, path, auth))
        body = self._body()
        if srv.credentials is not None and auth != srv.expected_auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        env = {
            **os.environ,
            "GIT_PROJECT_ROOT": str(srv.base),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true" if srv.receive_pack else "false",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        if srv.credentials is not None:
            env["REMOTE_USER"] = srv.credentials[0]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.run([_http_backend()], input=body, env=env, capture_output=True)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if proc.returncode != 0 and not head:
            status, payload = 500, proc.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitHttpServer(ThreadingHTTPServer):
    """Smart HTTP for every repository under ``base`` on 127.0.0.1 (a free port)."""

    daemon_threads = True

    def __init__(self, base: Path, credentials: tuple[str, str] | None = None, receive_pack: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base = base
        self.credentials = credentials
        self.receive_pack = receive_pack
        self.expected_auth = (
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode() if credentials else None)
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, name: str, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{name}"

    def start(self) -> GitHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=30)

    def pushes(self) -> int:
        """Smart-HTTP push requests served (POSTs to git-receive-pack)."""
        with self.lock:
            return sum(1 for method, path, _ in self.requests if method == "POST" and path.endswith("/git-receive-pack"))


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Callable[..., GitHttpServer]]:
    """Start smart-HTTP servers over a directory; every one is stopped at teardown."""
    if not os.path.exists(_http_backend()):
        pytest.skip("this git has no git-http-backend")
    started: list[GitHttpServer] = []

    def start(base: Path, credentials: tuple[str, str] | None = None, receive_pack: bool = True) -> GitHttpServer:
        server = GitHttpServer(base, credentials, receive_pack).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def served_dir(make_repo, tmp_path: Path) -> tuple[Path, GitRepo]:
    """A directory holding ``proj.git``: a bare repository with one commit."""
    base = tmp_path / "served"
    base.mkdir()
    bare_path = base / "proj.git"
    seed_bare(make_repo).path.rename(bare_path)
    return base, GitRepo(bare_path)


# -- exchange over smart HTTP ------------------------------------------------------------
def test_clones_over_smart_http_converge(served_dir, http_server, tmp_path: Path) -> None:
    base, bare = served_dir
    server = http_server(base)
    url = server.url("proj.git")
    a, b = clone(url, tmp_path / "a"), clone(url, tmp_path / "b")
    ra, rb = make_run(a.path, "a1", loss=1.0), make_run(b.path, "b1", loss=2.0)
    created = {ra, rb}
    prov_ok(a.path, "push")
    assert server.pushes() >= 1  # smart HTTP, through http-backend's receive-pack
    prov_ok(b.path, "push")  # the remote moved: pulls, merges, pushes again
    assert ledger_run_ids(bare.path) == created

    fetched = json.loads(prov_ok(a.path, "fetch", "--json").stdout)
    assert LEDGER in {f["ref"] for f in fetched["fetched"] if f["action"] == "fetched"}
    assert ledger_run_ids(a) == {ra}  # a fetch moves nothing live
    pulled = json.loads(prov_ok(a.path, "pull", "--json").stdout)
    assert pulled["runs_added"] == 1
    assert_converged([a, b], created)
    assert ledger_tree(bare.path) == ledger_tree(a)

    for round_no in range(2):  # both sides again, pull before push
        for repo in (a, b):
            created.add(make_run(repo.path, f"r{round_no}-{repo.path.name}"))
            prov_ok(repo.path, "pull")
            prov_ok(repo.path, "push")
    prov_ok(a.path, "pull")
    assert_converged([a, b], created)
    for repo in (a, b):
        assert_valid(repo)
    bare.fsck()


def test_three_clones_pushing_concurrently_over_smart_http(served_dir, http_server, tmp_path: Path) -> None:
    base, bare = served_dir
    server = http_server(base)
    clones = [clone(server.url("proj.git"), tmp_path / name) for name in ("a", "b", "c")]
    created = {make_run(repo.path, f"{repo.path.name}-{i}") for repo in clones for i in range(2)}
    results = at_once(clones, "push", "--json")
    for name, proc in sorted(results.items()):
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
    assert ledger_run_ids(bare.path) == created
    for repo in clones:
        prov_ok(repo.path, "pull")
    assert_converged(clones, created)
    bare.fsck()


# -- credentials in the URL -------------------------------------------------------------
def _stored_secrets(repo: GitRepo, allowed_config_lines: int = 0) -> list[str]:
    """Where USER or PASSWORD occur in what is kept in ``repo``: files under ``.git`` (the
    config only on the lines the test itself wrote), ref names, and every object."""
    found = []
    secrets = (USER.encode(), PASSWORD.encode())
    git_dir = repo.path / ".git"
    for root, _, files in os.walk(git_dir):
        for name in files:
            path = Path(root) / name
            data = path.read_bytes()
            if path == git_dir / "config":
                lines = [ln for ln in data.splitlines() if any(s in ln for s in secrets)]
                if len(lines) > allowed_config_lines:
                    found.append(f"config: {lines}")
            elif any(s in data for s in secrets):
                found.append(str(path.relative_to(repo.path)))
    refs = repo.git("for-each-ref", "--format=%(refname)")
    found += [f"ref {r}" for r in refs.splitlines() if USER in r or PASSWORD in r]
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo.path,
                             capture_output=True, check=True).stdout
    assert len(objects) > 1000  # the objects were read
    found += [f"an object holds {s.decode()}" for s in secrets if s in objects]
    return found


def test_credentials_in_the_url_reach_the_server_and_are_never_stored(served_dir, http_server, tmp_path: Path) -> None:
    base, bare = served_dir
    server = http_server(base, credentials=(USER, PASSWORD))
    secret_url = server.url("proj.git", f"{USER}:{PASSWORD}")
    plain_url = server.url("proj.git")
    a, b = clone(bare, tmp_path / "a"), clone(bare, tmp_path / "b")  # cloned from the path: no URL stored
    outputs: list[str] = []

    def ok(repo: GitRepo, *args: str) -> subprocess.CompletedProcess:
        proc = prov_ok(repo.path, *args)
        outputs.append(proc.stdout + proc.stderr)
        return proc

    ra = make_run(a.path, "from-a")
    ok(a, "push", secret_url)
    assert ledger_run_ids(bare.path) == {ra}
    with server.lock:  # the credentials were used (and were the only way in)
        assert server.expected_auth in {auth for _, _, auth in server.requests}

    ok(b, "fetch", secret_url)
    pulled = json.loads(ok(b, "pull", "--json", secret_url).stdout)
    assert pulled["run_ids_added"] == [ra]
    assert ledger_run_ids(b) == {ra}

    # a configured remote whose URL holds the credentials (the user put them there)
    b.git("remote", "add", "team", secret_url)
    rb = make_run(b.path, "from-b")
    ok(b, "push", "team")
    ok(a, "pull", "--json", secret_url)
    assert_converged([a, b], {ra, rb})

    for text in outputs:
        assert USER not in text and PASSWORD not in text, text
    assert any(plain_url in text or f"127.0.0.1:{server.port}" in text for text in outputs)
    assert _stored_secrets(a) == []
    assert _stored_secrets(b, allowed_config_lines=1) == []  # only remote.team.url, written by the test
    names = set(prov_refs(a)) | set(prov_refs(b))
    assert any(n.startswith("refs/prov-remotes/url-") for n in names), names  # a URL is named by its hash
    for repo in (a, b):
        assert_valid(repo)


# -- failures: one line, exit code 11, nothing local moves ----------------------------------
@pytest.mark.parametrize("command", ["push", "pull", "fetch"])
def test_unreachable_http_remote_and_wrong_password_are_exit_11(make_repo, served_dir, http_server,
                                                                 tmp_path: Path, command: str) -> None:
    base, _ = served_dir
    server = http_server(base, credentials=(USER, PASSWORD))
    repo = make_repo()
    assert run_prov(repo.path, "init", "--no-hooks", "--no-pull").returncode == 0
    make_run(repo.path, "local")
    before = prov_refs(repo)
    closed = _free_port()
    cases = (
        (f"http://{USER}:{PASSWORD}@127.0.0.1:{closed}/x.git", f"http://127.0.0.1:{closed}/x.git"),
        (server.url("proj.git", f"{USER}:wrong-{PASSWORD[::-1]}"), server.url("proj.git")),
        (server.url("proj.git"), server.url("proj.git")),  # no credentials at all: never a prompt
    )
    for url, shown in cases:
        proc = run_prov(repo.path, command, url)
        _assert_one_line_exit_11(proc, shown)
        assert PASSWORD not in proc.stderr and PASSWORD[::-1] not in proc.stderr and USER not in proc.stderr
        assert _without_keep(prov_refs(repo)) == _without_keep(before)
    assert _stored_secrets(repo) == []


def test_http_remote_refusing_pushes_is_exit_11(served_dir, http_server, tmp_path: Path) -> None:
    base, bare = served_dir
    server = http_server(base, receive_pack=False)
    a = clone(server.url("proj.git"), tmp_path / "a")
    prov_ok(a.path, "pull")  # reading works
    make_run(a.path, "unpublished")
    before = prov_refs(a)
    remote_before = bare.git("for-each-ref", "refs/prov", "refs/notes")
    proc = run_prov(a.path, "push")
    _assert_one_line_exit_11(proc, "origin")
    assert re.search(r"403|forbidden|not permitted|denied", proc.stderr, re.IGNORECASE), proc.stderr
    assert _without_keep(prov_refs(a)) == _without_keep(before)
    assert bare.git("for-each-ref", "refs/prov", "refs/notes") == remote_before
    assert run_git(tmp_path, "ls-remote", server.url("proj.git")).strip()  # the server is still up

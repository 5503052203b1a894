"""Reading git config as git reads it (store/config.py, store/config_file.py). The oracle
is always git itself: ``GitConfig.from_git`` (``git config --list -z``) must give the
same keys and values, in the same order, as ``GitConfig.for_repository``, and where git
refuses a config prov raises ``ConfigError``."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gitprov.errors import ConfigError
from gitprov.store.config import GitConfig, parse_bool
from gitprov.store.config_file import parse_config, parse_parameters
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo, run_git

BASE = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"


def ours(git_dir: Path | str, common_dir: Path | str | None = None) -> GitConfig | str:
    try:
        return GitConfig.for_repository(str(common_dir or git_dir), str(git_dir))
    except ConfigError:
        return "error"


def git_says(git_dir: Path | str) -> GitConfig | str:
    try:
        return GitConfig.from_git(str(git_dir))
    except ConfigError:
        return "error"


def agree(git_dir: Path | str, common_dir: Path | str | None = None) -> GitConfig | str:
    """prov's reading of the repository's config, checked against git's; returns it."""
    mine, theirs = ours(git_dir, common_dir), git_says(git_dir)
    if isinstance(mine, str) or isinstance(theirs, str):
        assert mine == theirs, (mine, theirs if isinstance(theirs, str) else theirs.items())
    else:
        assert mine.items() == theirs.items()
    return mine


@pytest.fixture
def plain(make_repo: Callable[..., GitRepo]) -> GitRepo:
    return make_repo(commits=1)


def local(repo: GitRepo, text: str) -> Path:
    """Make ``text`` the repository's own config (after the core settings)."""
    (repo.path / ".git" / "config").write_bytes((BASE + text).encode("utf-8", "surrogateescape"))
    return repo.path / ".git"


# -- the syntax of one file ------------------------------------------------------------

GOOD = {
    "case rules": "[Sec]\n\tKey = Value\n[sec \"Sub.Dot\"]\n\tK = v\n[SEC \"sub.dot\"]\n\tk = w\n",
    "legacy subsection": "[Sec.Legacy]\n\tKey = v\n[a.b \"C\"]\n\tk = v\n",
    "escaped subsection": '[s "a\\"b\\\\c\\x"]\n\tk = v\n[s ""]\n\tk = empty\n',
    "spaces and tabs": "[s]\n\tk =   lead\t and  trail  \n\tq = \" kept \t \"  x  \n",
    "comments": "# top\n; top\n[s] # after header\n\tk = a ; comment\n\tq = \"a ; kept\" # c\n\tr = x#y\n",
    "escapes": '[s]\n\tk = a\\tb\\nc\\\\d\\"e\\bf\n\tq = "a"b"c"\n\tr = "" x\n',
    "continuation": "[s]\n\tk = a \\\n   b\n\tq = \"x\\\ny\"\n\tr = c # not \\\n\tt = d\n",
    "bare and empty": "[s]\n\tbare\n\tempty =\n\tspaced =   \n\tbare2   \n\tflag=\n",
    "same line": "[s] k = v\n[t]k=w\n[u]\tflag\n",
    "names": "[s]\n\tk-1 = v\n\tK2=v\n\tA-b-C = v\n",
    "many values": "[s]\n\tk = 1\n[t]\n\tk = x\n[s]\n\tk = 2\n\tK = 3\n",
    "crlf": "[s]\r\n\tk = v\r\n\tq = \"a\rb\"\r\n\tr = a\rb\r\n",
    "no section": "k = v\n[s]\n\tk = w\n",
    "empty section": "[ \"x\"]\n\tk = v\n",
    "no newline at end": "[s]\n\tk = v",
    "bare at end": "[s]\n\tk",
    "non-ascii": "[s \"Ünï\"]\n\tk = çà va ✓\n",
}

BAD = {
    "open quote": '[s]\n\tk = "unclosed\n',
    "unknown escape": "[s]\n\tk = a\\qb\n",
    "underscore": "[s]\n\tk_x = v\n",
    "open header": "[s\n\tk = v\n",
    "empty header": "[]\n\tk = v\n",
    "space before ]": '[s "x" ]\n\tk = v\n',
    "open subsection": '[s "x]\n\tk = v\n',
    "no name": "[s]\n\t= v\n",
    "comment after bare key": "[s]\n\tk ; c\n",
    "digit first": "[s]\n\t1k = v\n",
    "newline in subsection": '[s "a\nb"]\n\tk = v\n',
}


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_a_config_file_reads_as_git_reads_it(plain: GitRepo, text: str) -> None:
    assert not isinstance(agree(local(plain, text)), str)


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_a_line_git_rejects_is_a_config_error(plain: GitRepo, text: str) -> None:
    assert agree(local(plain, text)) == "error"
    with pytest.raises(ConfigError, match=r"bad config line \d+ in file .*config"):
        GitConfig.for_repository(str(plain.path / ".git"))


def test_a_utf8_bom_is_skipped(plain: GitRepo) -> None:
    git_dir = local(plain, "")
    (git_dir / "config").write_bytes(b"\xef\xbb\xbf" + (BASE + "[s]\n\tk = v\n").encode())
    assert agree(git_dir).get("s.k") == "v"


def test_lookups_fold_the_case_of_section_and_name_not_subsection(plain: GitRepo) -> None:
    config = agree(local(plain, GOOD["case rules"]))
    assert config.get("SEC.KEY") == "Value"
    assert config.get_all("Sec.Sub.Dot.k") == ["v"] and config.get_all("sec.sub.dot.K") == ["w"]
    assert config.get("sec.SUB.DOT.k") is None


def test_empty_and_bare_values(plain: GitRepo) -> None:
    config = agree(local(plain, GOOD["bare and empty"]))
    assert config.get_all("s.bare") == [None] and config.get("s.bare") == "true"
    assert config.get_all("s.empty") == [""] and config.get_all("s.spaced") == [""]
    assert config.get_bool("s.bare") is True and config.get_bool("s.empty") is False


# -- booleans ----------------------------------------------------------------------------

BOOLEANS = ["true", "TRUE", "yes", "On", "false", "No", "OFF", "1", "0", "-1", "42", "0x0", "0x10", "010", "08",
            "1k", "1M", "1g", "3g", "0k", "maybe", "tru", "2147483647", "2147483648", "0x", '" 1"', '"1 "',
            "", None]


@pytest.mark.parametrize("value", BOOLEANS)
def test_booleans_as_git_parses_them(plain: GitRepo, value: str | None) -> None:
    git_dir = local(plain, "[s]\n\tflag\n" if value is None else f"[s]\n\tflag = {value}\n")
    proc = subprocess.run(["git", "--git-dir", str(git_dir), "config", "--bool", "--get", "s.flag"],
                          capture_output=True, text=True)
    config = agree(git_dir)
    if proc.returncode != 0:
        with pytest.raises(ConfigError, match=r"git config s\.flag = .* is not a boolean; set it to true or false"):
            config.get_bool("s.flag")
    else:
        assert config.get_bool("s.flag") is (proc.stdout.strip() == "true")


def test_a_missing_boolean_is_the_default() -> None:
    assert GitConfig({}).get_bool("s.flag", default=True) is True
    assert parse_bool("s.flag", None) is True and parse_bool("s.flag", "") is False


# -- includes ----------------------------------------------------------------------------

def test_includes_are_relative_to_the_including_file_and_nest(plain: GitRepo) -> None:
    inc = plain.path / ".git" / "inc"
    inc.mkdir()
    (inc / "a.cfg").write_text("[user]\n\tname = From A\n[include]\n\tpath = b.cfg\n")
    (inc / "b.cfg").write_text("[user]\n\temail = b@example.com\n")
    config = agree(local(plain, "[include]\n\tpath = inc/a.cfg\n[user]\n\temail = after@example.com\n"))
    assert config.get("user.name") == "From A"
    assert config.get_all("user.email") == ["test@example.com", "b@example.com", "after@example.com"]
    assert str(inc / "b.cfg") in config.files


def test_home_includes_missing_files_and_the_global_file(plain: GitRepo, isolated_git: Path) -> None:
    (isolated_git / "ident.cfg").write_text("[user]\n\tname = Included Person\n")
    with open(isolated_git / ".gitconfig", "a") as f:
        f.write("[include]\n\tpath = ~/ident.cfg\n\tpath = ~/missing.cfg\n\tpath = nowhere/else.cfg\n")
    config = agree(local(plain, ""))
    assert config.get("user.name") == "Included Person"
    assert str(isolated_git / "missing.cfg") in config.files  # watched, should it appear


@pytest.mark.parametrize(("depth", "fails"), [(10, False), (11, True)])
def test_includes_nest_ten_deep(plain: GitRepo, tmp_path: Path, depth: int, fails: bool) -> None:
    for i in range(1, depth + 1):
        nxt = f"[include]\n\tpath = f{i + 1}.cfg\n" if i < depth else ""
        (tmp_path / f"f{i}.cfg").write_text(f"[chain]\n\tlevel = {i}\n{nxt}")
    result = agree(local(plain, f"[include]\n\tpath = {tmp_path / 'f1.cfg'}\n"))
    assert (result == "error") is fails
    if fails:
        with pytest.raises(ConfigError, match="more than 10 nested config includes"):
            GitConfig.for_repository(str(plain.path / ".git"))


@pytest.mark.parametrize("text", ["[include]\n\tpath\n", "[include]\n\tpath = ~nosuchuser/x.cfg\n",
                                  "[include]\n\tpath = .\n", "[include]\n\tpath = config\n"],
                         ids=["bare", "unknown user", "a directory", "itself"])
def test_includes_git_refuses(plain: GitRepo, text: str) -> None:
    assert agree(local(plain, text)) == "error"


# -- includeIf -------------------------------------------------------------------------

def include_if(repo: GitRepo, condition: str, tmp_path: Path, where: Path | None = None) -> GitConfig | str:
    (tmp_path / "cond.cfg").write_text("[cond]\n\tmatched = yes\n")
    text = f'[includeIf "{condition}"]\n\tpath = {tmp_path / "cond.cfg"}\n'
    if where is None:
        return agree(local(repo, text))
    where.write_text(text)
    return agree(local(repo, f"[include]\n\tpath = {where}\n"))


def matched(config: GitConfig | str) -> bool:
    assert not isinstance(config, str)
    return config.get("cond.matched") == "yes"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("{git}", True), ("{git}/", False), ("{repo}/", True), ("{repo}", False), ("{repo}/**", True),
    ("{repo_name}/", True), ("{repo_name}/.git", True), ("**/{repo_name}/.git", True), ("{repo_name}", False),
    ("{parent}/*/.git", True), ("{parent}/*", False), ("{parent}/**", True), ("{parent}/other/", False),
    ("{upper_repo}/", False), ("/nowhere/", False), ("{repo_name}/.gi?", True), ("{repo_name}/.g[h-j]t", True),
])
@pytest.mark.parametrize("icase", [False, True])
def test_include_if_gitdir(plain: GitRepo, tmp_path: Path, pattern: str, expected: bool, icase: bool) -> None:
    repo = plain.path.resolve()
    names = {"git": repo / ".git", "repo": repo, "repo_name": repo.name, "parent": repo.parent,
             "upper_repo": str(repo).upper()}
    condition = ("gitdir/i:" if icase else "gitdir:") + pattern.format(**names)
    assert matched(include_if(plain, condition, tmp_path)) is (expected or (icase and pattern == "{upper_repo}/"))


def test_include_if_gitdir_relative_to_the_file_and_home(make_repo: Callable[..., GitRepo], tmp_path: Path,
                                                         isolated_git: Path) -> None:
    repo = make_repo()
    sibling = repo.path.parent / "cond-file.cfg"
    assert matched(include_if(repo, f"gitdir:./{repo.path.name}/", tmp_path, where=sibling))
    assert not matched(include_if(repo, "gitdir:./elsewhere/", tmp_path, where=sibling))
    assert not matched(include_if(repo, f"gitdir:./{repo.path.name}/", tmp_path))  # relative to .git/config
    home_repo = GitRepo(isolated_git / "work" / "proj")
    home_repo.path.mkdir(parents=True)
    run_git(home_repo.path, "init", "-q")
    assert matched(include_if(home_repo, "gitdir:~/work/", tmp_path))
    assert not matched(include_if(home_repo, "gitdir:~/play/", tmp_path))


def test_include_if_gitdir_through_a_symlink(plain: GitRepo, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(plain.path)
    (tmp_path / "cond.cfg").write_text("[cond]\n\tmatched = yes\n")
    local(plain, f'[includeIf "gitdir:{link}/"]\n\tpath = {tmp_path / "cond.cfg"}\n')
    assert matched(agree(link / ".git"))  # git given the path through the link matches on its second try


@pytest.mark.parametrize(("branch", "pattern", "expected"), [
    ("main", "main", True), ("main", "mai*", True), ("main", "other", False), ("feat/x", "feat/*", True),
    ("feat/x/y", "feat/*", False), ("feat/x/y", "feat/**", True), ("feat/x/y", "feat/", True),
    ("feat", "feat/", False), ("Main", "main", False), ("main", "[lm]ain", True),
])
def test_include_if_onbranch(plain: GitRepo, tmp_path: Path, branch: str, pattern: str, expected: bool) -> None:
    plain.git("checkout", "-q", "-B", branch)
    config = include_if(plain, f"onbranch:{pattern}", tmp_path)
    assert matched(config) is expected
    assert str(plain.path / ".git" / "HEAD") in config.files


def test_include_if_onbranch_detached_and_unborn(make_repo: Callable[..., GitRepo], tmp_path: Path) -> None:
    repo = make_repo(commits=1)
    repo.git("checkout", "-q", "--detach")
    assert not matched(include_if(repo, "onbranch:main", tmp_path))
    unborn = make_repo(commits=0)
    assert matched(include_if(unborn, "onbranch:main", tmp_path))


def test_include_if_hasconfig_remote_url(plain: GitRepo, tmp_path: Path) -> None:
    condition = "hasconfig:remote.*.url:https://example.com/**"
    assert not matched(include_if(plain, condition, tmp_path))
    plain.git("remote", "add", "origin", "https://example.com/team/repo.git")
    text = (plain.path / ".git" / "config").read_text()
    (tmp_path / "cond.cfg").write_text("[cond]\n\tmatched = yes\n")
    local(plain, text.replace(BASE, "") + f'[includeIf "{condition}"]\n\tpath = {tmp_path / "cond.cfg"}\n')
    assert matched(agree(plain.path / ".git"))
    (tmp_path / "cond.cfg").write_text("[remote \"sneaky\"]\n\turl = https://example.com/x\n")
    assert agree(plain.path / ".git") == "error"  # git forbids remote URLs in such files


def test_unknown_conditions_are_false(plain: GitRepo, tmp_path: Path) -> None:
    assert not matched(include_if(plain, "nosuch:thing", tmp_path))
    assert not matched(include_if(plain, "gitdir", tmp_path))


# -- a linked worktree -------------------------------------------------------------------

def test_a_linked_worktree_has_its_own_gitdir_head_and_config(plain: GitRepo, tmp_path: Path) -> None:
    (tmp_path / "cond.cfg").write_text("[cond]\n\tmatched = yes\n")
    plain.git("worktree", "add", "-q", "-b", "side", str(tmp_path / "wt"))
    plain.git("config", "extensions.worktreeConfig", "true")
    plain.git("config", "--worktree", "wt.where", "main")
    plain.git("config", "includeIf.onbranch:side.path", str(tmp_path / "cond.cfg"))
    run_git(tmp_path / "wt", "config", "--worktree", "wt.where", "linked")
    common = plain.path / ".git"
    wt_dir = common / "worktrees" / "wt"
    main, linked = agree(common), agree(wt_dir, common)
    assert main.get("wt.where") == "main" and not matched(main)
    assert linked.get("wt.where") == "linked" and matched(linked)
    assert GitRepository.open(str(tmp_path / "wt")).config.get("wt.where") == "linked"


# -- system, global and command-line config -------------------------------------------

def test_system_global_and_xdg_files(plain: GitRepo, tmp_path: Path, isolated_git: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "system").write_text("[who]\n\tis = system\n[include]\n\tpath = sys-inc\n")
    (tmp_path / "sys-inc").write_text("[who]\n\tis = system include\n")
    (tmp_path / "xdg" / "git").mkdir(parents=True)
    (tmp_path / "xdg" / "git" / "config").write_text("[who]\n\tis = xdg\n")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "false")
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(tmp_path / "system"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    git_dir = local(plain, "[who]\n\tis = local\n")
    assert agree(git_dir).get_all("who.is") == ["system", "system include", "xdg", "local"]
    (tmp_path / "global").write_text("[who]\n\tis = global\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "global"))
    assert agree(git_dir).get_all("who.is") == ["system", "system include", "global", "local"]
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "yes")
    assert agree(git_dir).get_all("who.is") == ["local"]
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "sometimes")
    assert agree(git_dir) == "error"


def exported_parameters(*options: str) -> str:
    """The ``GIT_CONFIG_PARAMETERS`` git exports for ``git -c OPTION ...``."""
    args = [a for option in options for a in ("-c", option)]
    alias = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "alias.penv",
             "GIT_CONFIG_VALUE_0": "!printenv GIT_CONFIG_PARAMETERS"}
    proc = subprocess.run(["git", *args, "penv"], capture_output=True, text=True, check=True,
                          env={**os.environ, **alias})
    return proc.stdout.removesuffix("\n")


def test_git_dash_c_and_config_count(plain: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "inc.cfg").write_text("[from]\n\tinclude = yes\n")
    params = exported_parameters(
        "user.name=Jo 'Quote' O'Brien", "Sec.Sub.KEY=v=with=equals", "flag.bare", "flag.empty=", "x.y=it's!",
        f"include.path={tmp_path / 'inc.cfg'}", "user.email=dash-c@example.com",
    )
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", params)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.email")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "count@example.com")
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "Count.Sub.K")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "")
    config = agree(local(plain, "[user]\n\temail = local@example.com\n"))
    assert config.get("user.name") == "Jo 'Quote' O'Brien"
    assert config.get_all("user.email")[-3:] == ["local@example.com", "count@example.com", "dash-c@example.com"]
    assert config.get_all("sec.Sub.key") == ["v=with=equals"] and config.get_all("count.Sub.k") == [""]
    assert config.get_all("flag.bare") == [None] and config.get_all("flag.empty") == [""]
    assert config.get("x.y") == "it's!" and config.get("from.include") == "yes"


@pytest.mark.parametrize("env", [
    {"GIT_CONFIG_PARAMETERS": "'user.name=Old Style' 'a.b'"},
    {"GIT_CONFIG_PARAMETERS": "'a.b'='c'   'd.e'="},
    {"GIT_CONFIG_PARAMETERS": "'a.b'='c'x"},
    {"GIT_CONFIG_PARAMETERS": "a.b=c"},
    {"GIT_CONFIG_PARAMETERS": "'a'='c'"},
    {"GIT_CONFIG_PARAMETERS": "'a.1b'='c'"},
    {"GIT_CONFIG_PARAMETERS": "'include.path'='relative.cfg'"},
    {"GIT_CONFIG_COUNT": "1"},
    {"GIT_CONFIG_COUNT": "x"},
    {"GIT_CONFIG_COUNT": " 1", "GIT_CONFIG_KEY_0": "a.b", "GIT_CONFIG_VALUE_0": "c"},
    {"GIT_CONFIG_COUNT": "0", "GIT_CONFIG_KEY_0": "a.b", "GIT_CONFIG_VALUE_0": "c"},
    {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "bad", "GIT_CONFIG_VALUE_0": "c"},
    {"GIT_CONFIG_COUNT": ""},
], ids=lambda env: repr(env)[:60])
def test_command_line_config_git_accepts_or_refuses(plain: GitRepo, monkeypatch: pytest.MonkeyPatch,
                                                    env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    agree(local(plain, ""))


def test_parse_parameters_of_git_dash_c() -> None:
    params = exported_parameters("a.b=x y", "c.d", "e.f=", "g.h='q'")
    assert parse_parameters({"GIT_CONFIG_PARAMETERS": params}) == [
        ("a.b", "x y"), ("c.d", None), ("e.f", ""), ("g.h", "'q'")]


# -- many generated configurations -------------------------------------------------------

_words = st.tuples(st.sampled_from("abcXYZ"), st.text(alphabet="abcXYZ09-", max_size=4)).map("".join)
_subsections = st.text(alphabet='aB.-_ "\\/!x', max_size=6)
_values = st.text(alphabet=st.sampled_from(list("ab Z\t;#\"\\=.'!é")), max_size=10)


@st.composite
def _lines(draw: st.DrawFn, include_targets: tuple[str, ...]) -> str:
    kind = draw(st.sampled_from(["value", "quoted", "bare", "empty", "include", "includeif", "section", "comment"]))
    name = draw(_words)
    if kind == "section":
        sub = draw(st.none() | _subsections)
        if sub is None:
            return f"[{draw(_words)}]"
        escaped = sub.replace("\\", "\\\\").replace('"', '\\"')
        return f'[{draw(_words)} "{escaped}"]'
    if kind == "comment":
        return draw(st.sampled_from(["# c", "; c", "", "   "]))
    if kind == "bare":
        return f"\t{name}"
    if kind == "empty":
        return f"\t{name} ="
    if kind == "quoted":
        raw = draw(_values)
        return '\t{} = "{}"'.format(name, raw.replace("\\", "\\\\").replace('"', '\\"'))
    if kind == "value":
        raw = draw(_values).replace("\\", "\\\\").replace('"', '\\"')
        return f"\t{name} = {raw}"
    target = draw(st.sampled_from(include_targets))
    if kind == "include":
        return f"[include]\n\tpath = {target}"
    condition = draw(st.sampled_from([
        "gitdir:{repo}/", "gitdir:**/nomatch/", "gitdir/i:{REPO}/", "gitdir:./", "onbranch:main", "onbranch:m*",
        "onbranch:other", "onbranch:feat/", "hasconfig:remote.*.url:https://**", "weird:x"]))
    return f'[includeIf "{condition}"]\n\tpath = {target}'


#: what each file may include (no cycles): relative to the file, from HOME, absolute, missing
_TARGETS = {
    "local": ("{tmp}/a.cfg", "{tmp}/sub/b.cfg", "~/h.cfg", "missing.cfg"),
    "a.cfg": ("sub/b.cfg", "~/h.cfg", "missing.cfg", "sub"),
    "sub/b.cfg": ("../missing.cfg", "~/h.cfg", "{tmp}/sub/nothing.cfg"),
    "home": ("missing.cfg", "{tmp}/none.cfg"),
}


@st.composite
def _configs(draw: st.DrawFn) -> dict[str, list[str]]:
    return {name: draw(st.lists(_lines(targets), max_size=8)) for name, targets in _TARGETS.items()}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_configs(), branch=st.sampled_from(["main", "other", "feat/x"]),
       dash_c=st.lists(st.tuples(st.sampled_from(["s.k", "S.Sub.K", "user.name", "flag.x"]),
                                 st.none() | _values), max_size=3))
def test_generated_configurations_read_as_git_reads_them(plain: GitRepo, tmp_path_factory: pytest.TempPathFactory,
                                                         isolated_git: Path, monkeypatch: pytest.MonkeyPatch,
                                                         spec: dict[str, list[str]], branch: str,
                                                         dash_c: list[tuple[str, str | None]]) -> None:
    tmp = tmp_path_factory.mktemp("gen")
    (tmp / "sub").mkdir()
    local(plain, "")
    plain.git("checkout", "-q", "-B", branch)
    repo = str(plain.path.resolve())
    names = {"local": plain.path / ".git" / "config", "a.cfg": tmp / "a.cfg", "sub/b.cfg": tmp / "sub" / "b.cfg",
             "home": isolated_git / "h.cfg"}
    for key, lines in spec.items():
        text = "\n".join(lines).replace("{repo}", repo).replace("{REPO}", repo.upper()).replace("{tmp}", str(tmp))
        if key == "local":
            text = BASE + "[include]\n\tpath = " + str(tmp / "a.cfg") + "\n" + text
        names[key].write_text(text + "\n", encoding="utf-8", errors="surrogateescape")
    with monkeypatch.context() as env:
        options = [key if value is None else f"{key}={value}" for key, value in dash_c]
        if options:
            env.setenv("GIT_CONFIG_PARAMETERS", exported_parameters(*options))
        config = agree(plain.path / ".git")
        event("git refuses it" if isinstance(config, str) else f"{len(config.files) - 3} files beyond the usual 3")
        if not isinstance(config, str):
            for key, values in config.items():
                if re.fullmatch(r"[a-z0-9-]+(\..*)?\.[a-z][a-z0-9-]*", key):
                    assert config.get_all(key) == values


# -- the parser alone --------------------------------------------------------------------

def test_parse_config_reports_the_line() -> None:
    assert parse_config("[s]\n\tk = v\n\tbare\n") == [("s.k", "v"), ("s.bare", None)]
    with pytest.raises(ConfigError, match="bad config line 3 in somewhere"):
        parse_config("[s]\n\tk = v\n\tk = \"open\n", "somewhere")


def test_reading_the_config_spawns_no_git(plain: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    import gitprov.store.gitbin as gitbin

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("git was run")

    for name in ("run", "output", "start"):
        monkeypatch.setattr(gitbin, name, refuse)
    assert GitRepository.open(str(plain.path)).config.get("user.name") == "Test User"

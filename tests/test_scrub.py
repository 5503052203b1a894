"""``scrub``: what it redacts today, exactly, and what it leaves alone.

Token-shaped test values are assembled from pieces so that secret scanners do not
flag this file. The cases marked "today" pin behaviour the scrubber has now, gaps and
over-matches included: widening or narrowing the patterns must change them on purpose.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitprov.scrub import (
    REDACTED,
    Scrubber,
    is_redaction,
    is_secret_name,
    redact_params,
    scrub_argv,
    scrub_text,
    scrub_url,
)

R = REDACTED

AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_PAT = "ghp_" + "a1B2" * 9
GITHUB_FINE = "github_pat_" + "11ABCDEFG0" * 3 + "_" + "x" * 20
GITLAB_PAT = "glpat-" + "AbCd_-1234" * 2
SLACK_BOT = "xoxb-" + "123456789012-" + "abcdefABCDEF"
SLACK_HOOK = "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24
OPENAI_KEY = "sk-" + "proj-" + "Ab1_" * 8
HF_TOKEN = "hf_" + "AbCdEf0123" * 3
GOOGLE_KEY = "AIza" + "Sy" + "A" * 33
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----"


# -- URLs --------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "scrubbed"), [
    ("https://user:hunter2@github.com/org/repo.git", "https://github.com/org/repo.git"),
    ("https://" + GITHUB_PAT + "@github.com/org/repo", "https://github.com/org/repo"),  # a bare token
    ("http://u:p@localhost:5000/api", "http://localhost:5000/api"),
    ("git+https://u:p@host/x", "git+https://host/x"),
    ("ssh://git@github.com/org/repo", "ssh://github.com/org/repo"),  # any user part goes, secret or not
    ("see https://a:b@x.org/1 and ftp://c:d@y.org/2", "see https://x.org/1 and ftp://y.org/2"),
    ("https://github.com/org/repo", "https://github.com/org/repo"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),  # scp-like: no scheme, unchanged
    ("alice@example.com", "alice@example.com"),
])
def test_scrub_url_drops_the_user_part_of_every_url(url: str, scrubbed: str) -> None:
    assert scrub_url(url) == scrubbed
    assert scrub_text(url) == scrubbed


def test_an_at_sign_in_the_password_does_not_leave_part_of_it() -> None:
    assert scrub_url("https://user:p@ss@host/x") == "https://host/x"
    assert scrub_url("https://a@b@host/x and https://c@d@e@other:8080/y") == "https://host/x and https://other:8080/y"


def test_a_slash_in_credentials_ends_them_as_it_does_for_git() -> None:
    """An unescaped '/' starts the path (RFC 3986; git reads the host as ``user:pa``):
    nothing after it is a credential, so nothing is removed."""
    assert scrub_url("https://user:pa/ss@host/x") == "https://user:pa/ss@host/x"


# -- token shapes ------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    AWS_KEY_ID,
    "ASIA" + "Y" * 16,
    GITHUB_PAT,
    *(f"gh{c}_" + "Z" * 36 for c in "ousr"),
    GITHUB_FINE,
    GITLAB_PAT,
    *(f"gl{p}-" + "q" * 20 for p in ("dt", "ptt", "rt", "cbt", "imt", "soat", "ffct")),
    SLACK_BOT,
    SLACK_HOOK,
    OPENAI_KEY,
    "sk-" + "A" * 20,
    "sk-svcacct-" + "b" * 20,
    "sk-admin-" + "c" * 20,
    HF_TOKEN,
    GOOGLE_KEY,
    PEM,
    PEM.replace("RSA ", "OPENSSH "),
    PEM.replace("RSA ", ""),
])
def test_known_token_shapes_are_redacted_where_they_stand(token: str) -> None:
    assert scrub_text(token) == R
    assert scrub_text(f"key: {token}; next") == f"key: {R}; next"
    assert scrub_argv([token]) == [R]


@pytest.mark.parametrize("text", [
    "AKIA" + "IOSFODNN7EXAMPL",          # 15 characters after the prefix, not 16
    "akia" + "iosfodnn7example",          # AWS key ids are upper case
    "ghp_" + "a" * 19,                    # GitHub tokens have at least 20
    "glpat-" + "a" * 19,
    "xoxb-" + "a" * 9,
    "sk-" + "a" * 19,
    "hf_" + "a" * 29,
    "AIza" + "a" * 34,
    "-----BEGIN RSA PRIVATE KEY-----\nno end line",
    # AWS secret access keys and generic hex secrets have no recognisable shape
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
    "0123456789abcdef" * 4,
])
def test_near_misses_and_shapeless_secrets_are_left_unchanged_today(text: str) -> None:
    assert scrub_text(text) == text


def test_the_openai_prefix_needs_a_word_boundary() -> None:
    assert scrub_text("task-management-system-for-everyone") == "task-management-system-for-everyone"
    assert scrub_text("key " + OPENAI_KEY) == "key " + R


# -- secret names ------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "GITHUB_TOKEN", "HF_TOKEN", "MY_SECRET", "DB_PASSWORD", "mysql_passwd", "GPG_PASSPHRASE",
    "OPENAI_API_KEY", "apikey", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ssh_private_key",
    "GOOGLE_APPLICATION_CREDENTIALS", "BASIC_AUTH", "SSH_KEY", "KEY", "key",
    # any case and separator; camelCase splits into words
    "db-pass", "DB_PASS", "PASS", "pwd", "db.pwd", "apiKey", "APIKey", "dbPassword", "x-auth-token",
    "Authorization", "client_secret", "refresh-token", "mysqlpassword", "hubtoken", "sort_key", "creds",
    "aws.access.key.id", "Cookie",
])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "PATH", "HOME", "LR", "BATCH_SIZE", "KEYBOARD", "MONKEY", "KEY_ID", "MY_KEY_ID", "",
    # ML names that only contain a secret word's letters
    "TOKENIZER", "max_tokens", "AUTHOR", "OAUTH_CLIENT_ID", "num_passes", "keyframe", "passes",
])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


# -- command lines -----------------------------------------------------------------

@pytest.mark.parametrize(("argv", "scrubbed"), [
    (["--password=hunter2"], [f"--password={R}"]),
    (["--password", "hunter2"], ["--password", R]),
    (["-password=hunter2"], [f"-password={R}"]),
    (["--Password=hunter2"], [f"--Password={R}"]),            # case kept, value gone
    (["--db-password="], [f"--db-password={R}"]),              # even an empty value
    (["--api-key=abc"], [f"--api-key={R}"]),
    (["--api-key", "abc"], ["--api-key", R]),
    (["--access_key=abc", "--private-key=abc"], [f"--access_key={R}", f"--private-key={R}"]),
    (["--token=" + GITHUB_PAT], [f"--token={R}"]),
    (["--auth-token", "abc", "--lr", "0.1"], ["--auth-token", R, "--lr", "0.1"]),
    (["--client-secret", "abc"], ["--client-secret", R]),
    (["--password", "--verbose"], ["--password", R]),          # the next argument, whatever it is
    (["train.py", "--token"], ["train.py", "--token"]),        # nothing follows: nothing to redact
    (["--password", "--password", "x"], ["--password", R, "x"]),
    # NAME=value arguments, as in `env NAME=value cmd`
    (["GITHUB_TOKEN=abc"], [f"GITHUB_TOKEN={R}"]),
    (["AWS_SECRET_ACCESS_KEY=abc", "AWS_ACCESS_KEY_ID=AKIA"], [f"AWS_SECRET_ACCESS_KEY={R}", f"AWS_ACCESS_KEY_ID={R}"]),
    (["HF_TOKEN=abc", "SSH_KEY=abc", "password=abc", "DB_PASSWORD="], [f"HF_TOKEN={R}", f"SSH_KEY={R}", f"password={R}", f"DB_PASSWORD={R}"]),
    (["LR=0.1", "PATH=/usr/bin", "MY_KEY_ID=3"], ["LR=0.1", "PATH=/usr/bin", "MY_KEY_ID=3"]),
    # everything else is scrubbed as text
    (["--remote", "https://u:p@host/r.git"], ["--remote", "https://host/r.git"]),
    (["--note=" + HF_TOKEN], [f"--note={R}"]),
    (["python", "train.py", "--lr", "0.1", "data/train.csv"], ["python", "train.py", "--lr", "0.1", "data/train.csv"]),
])
def test_scrub_argv(argv: list[str], scrubbed: list[str]) -> None:
    assert scrub_argv(argv) == scrubbed


@pytest.mark.parametrize(("argv", "scrubbed"), [
    # option names: the same rule for '=' and separate values
    (["--key=abc"], [f"--key={R}"]),
    (["--key", "abc"], ["--key", R]),
    (["--ssh-key=abc"], [f"--ssh-key={R}"]),
    (["--db-pass=X"], [f"--db-pass={R}"]),
    (["--pass", "hunter2"], ["--pass", R]),
    (["DB_PASS=X", "db.password=y"], [f"DB_PASS={R}", f"db.password={R}"]),
    # ML options that merely contain a secret word's letters are kept
    (["--tokenizer=bert-base"], ["--tokenizer=bert-base"]),
    (["--max-tokens", "512"], ["--max-tokens", "512"]),
    (["--author=alice"], ["--author=alice"]),
    (["AUTHOR=alice"], ["AUTHOR=alice"]),
    # an '=' option is one argument: the one after it is not its value
    (["--message=fix auth", "data.csv"], ["--message=fix auth", "data.csv"]),
    # secrets inside shell scripts, headers, JSON, YAML and URL queries
    (["sh", "-c", "python train.py --password=X --lr 0.1"], ["sh", "-c", f"python train.py --password={R} --lr 0.1"]),
    (["bash", "-c", "export DB_PASS=X; ./run --api-key Y data"], ["bash", "-c", f"export DB_PASS={R}; ./run --api-key {R} data"]),
    (["curl", "--header", "Authorization: Bearer X", "https://h/x"], ["curl", "--header", f"Authorization: {R}", "https://h/x"]),
    (["curl", "-H", "X-Api-Key: abc", "-H", "Cookie: s=1; t=2"], ["curl", "-H", f"X-Api-Key: {R}", "-H", f"Cookie: {R}"]),
    (["--config", '{"password": "X", "lr": 0.1}'], ["--config", f'{{"password": "{R}", "lr": 0.1}}']),
    (["--config", "{db: {password: X}, lr: 0.1}"], ["--config", f"{{db: {{password: {R}}}, lr: 0.1}}"]),
    (["--url", "https://h/x?api_key=abc&n=1"], ["--url", f"https://h/x?api_key={R}&n=1"]),
    (["--param", "api_key=X", "--param", "lr=0.1"], ["--param", f"api_key={R}", "--param", "lr=0.1"]),
    # short options are not recognised: their meaning is the program's
    (["-p", "hunter2"], ["-p", "hunter2"]),
])
def test_scrub_argv_finds_secrets_in_every_shape(argv: list[str], scrubbed: list[str]) -> None:
    assert scrub_argv(argv) == scrubbed


def test_user_patterns_and_names_add_to_the_rules() -> None:
    rules = Scrubber(patterns=["acme_[0-9a-f]{8}"], names=["vault"])
    assert rules.scrub_argv(["--note=acme_0123abcd", "--vault-path", "x", "VAULT=y"]) == [
        f"--note={R}", "--vault-path", R, f"VAULT={R}"]
    assert scrub_argv(["--note=acme_0123abcd", "--vault-path", "x"]) == ["--note=acme_0123abcd", "--vault-path", "x"]


def test_secret_params_become_keyed_digests_that_compare_equal() -> None:
    key = b"k" * 32
    params = {"lr": 0.1, "api_key": "X", "db": {"password": "Y", "host": "h"}, "layers": [{"token": "Z"}]}
    out = redact_params(params, key)
    assert out["lr"] == 0.1 and out["db"]["host"] == "h"
    for secret in (out["api_key"], out["db"]["password"], out["layers"][0]["token"]):
        assert is_redaction(secret)
    assert redact_params({"api_key": "X"}, key) == {"api_key": out["api_key"]}
    assert redact_params({"api_key": "X2"}, key)["api_key"] != out["api_key"]
    assert redact_params({"api_key": "X"}, b"other")["api_key"] != out["api_key"]
    assert redact_params(out, key) == out  # already redacted: kept
    assert "X" not in repr(out) and "Y" not in repr(out)


def test_the_key_is_asked_only_when_something_is_secret() -> None:
    def key() -> bytes:
        raise AssertionError("asked for the key")

    assert redact_params({"lr": 0.1, "name": "x"}, key) == {"lr": 0.1, "name": "x"}


def test_scrub_argv_does_not_mutate_its_input() -> None:
    argv = ["--password", "hunter2", "GITHUB_TOKEN=abc"]
    scrub_argv(argv)
    assert argv == ["--password", "hunter2", "GITHUB_TOKEN=abc"]


# -- properties ----------------------------------------------------------------------

# Harmless text: no '@' (so no URL credentials), no '_' or '-' (every token prefix has
# one, or is upper case), no upper case (AKIA…, AIza…), and not argv-special ('=').
# No ':' either: ``token: x`` is a YAML pair whose name is secret.
HARMLESS = string.ascii_lowercase + string.digits + " .,;/+!?()[]{}'\"#%&*~\téü中"
harmless_text = st.text(alphabet=HARMLESS, max_size=80)

# Text rich in the pieces the patterns look for; '@' left out (see below).
PIECES = ["https://", "u:p", "ghp_", "github_pat_", "glpat-", "xoxb-", "sk-", "hf_", "AIza", "AKIA",
          "ABCDEFGHIJKLMNOP", "a" * 40, "-", "_", "/", "=", " ", "\n", "--password", "TOKEN",
          "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", SLACK_HOOK[:33]]
spiky_text = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=30).map("".join).filter(
    lambda t: "@" not in t)


@given(harmless_text)
def test_text_without_secret_shapes_round_trips_unchanged(text: str) -> None:
    assert scrub_url(text) == text
    assert scrub_text(text) == text


@given(st.lists(harmless_text.filter(lambda a: "=" not in a), max_size=8))
def test_command_lines_without_secret_shapes_round_trip_unchanged(argv: list[str]) -> None:
    assert scrub_argv(argv) == argv


@given(st.one_of(st.text(), spiky_text).filter(lambda t: "@" not in t))
def test_scrub_text_is_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


@given(st.lists(st.one_of(st.text(max_size=12), spiky_text), max_size=6).filter(
    lambda argv: not any("@" in a for a in argv)))
def test_scrub_argv_is_idempotent_and_keeps_the_argument_count(argv: list[str]) -> None:
    once = scrub_argv(argv)
    assert len(once) == len(argv)
    assert scrub_argv(once) == once


@pytest.mark.parametrize(("text", "scrubbed"), [
    ("https://a@b@host/x", "https://host/x"),
    # a webhook token inside a URL's user part goes, then the user part
    ("https://" + SLACK_HOOK[:33] + "u:p@h", "https://h"),
    ("Traceback: connect(password='hunter2', host='db')", f"Traceback: connect(password='{R}', host='db')"),
    ("password: hunter2\nuser: bob", f"password: {R}\nuser: bob"),
])
def test_scrub_text_in_one_pass(text: str, scrubbed: str) -> None:
    assert scrub_text(text) == scrubbed
    assert scrub_text(scrubbed) == scrubbed

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

from gitprov.scrub import REDACTED, is_secret_name, scrub_argv, scrub_text, scrub_url

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


@pytest.mark.parametrize(("url", "today"), [
    # a '/' in the credentials stops the match: nothing is removed
    ("https://user:pa/ss@host/x", "https://user:pa/ss@host/x"),
    # an '@' in the password: only the part before it is removed, one '@' per pass
    ("https://user:p@ss@host/x", "https://ss@host/x"),
])
def test_scrub_url_today_misses_credentials_with_slash_or_at(url: str, today: str) -> None:
    assert scrub_url(url) == today


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


def test_the_openai_prefix_also_matches_inside_ordinary_words_today() -> None:
    """``sk-`` has no word boundary: a hyphenated name with ``sk-`` in it is redacted."""
    assert scrub_text("task-management-system-for-everyone") == "ta" + R
    assert scrub_text("task-runner") == "task-runner"  # under 20 characters after "sk-"


# -- secret names ------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "GITHUB_TOKEN", "HF_TOKEN", "MY_SECRET", "DB_PASSWORD", "mysql_passwd", "GPG_PASSPHRASE",
    "OPENAI_API_KEY", "apikey", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ssh_private_key",
    "GOOGLE_APPLICATION_CREDENTIALS", "BASIC_AUTH", "SSH_KEY", "KEY", "key",
    # over-matches today: these substrings are enough
    "TOKENIZER", "max_tokens", "AUTHOR", "OAUTH_CLIENT_ID",
])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "LR", "BATCH_SIZE", "KEYBOARD", "MONKEY", "KEY_ID", "MY_KEY_ID", "PASS", ""])
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


@pytest.mark.parametrize(("argv", "today"), [
    # option names: '=' form matches only the listed words, the separate-value form any secret name
    (["--key=abc"], ["--key=abc"]),
    (["--key", "abc"], ["--key", R]),
    (["--ssh-key=abc"], ["--ssh-key=abc"]),
    (["--ssh-key", "abc"], ["--ssh-key", R]),
    # short and abbreviated options are not recognised
    (["-p", "hunter2"], ["-p", "hunter2"]),
    (["--pass", "hunter2"], ["--pass", "hunter2"]),
    # over-matches: ML options whose names contain a secret word
    (["--tokenizer=bert-base"], [f"--tokenizer={R}"]),
    (["--max-tokens", "512"], ["--max-tokens", R]),
    (["--author=alice"], [f"--author={R}"]),
    (["AUTHOR=alice"], [f"AUTHOR={R}"]),
    # an '=' option whose value holds a secret word is kept, and the argument after it goes
    (["--message=fix auth", "data.csv"], ["--message=fix auth", R]),
])
def test_scrub_argv_edges_today(argv: list[str], today: list[str]) -> None:
    assert scrub_argv(argv) == today


def test_scrub_argv_does_not_mutate_its_input() -> None:
    argv = ["--password", "hunter2", "GITHUB_TOKEN=abc"]
    scrub_argv(argv)
    assert argv == ["--password", "hunter2", "GITHUB_TOKEN=abc"]


# -- properties ----------------------------------------------------------------------

# Harmless text: no '@' (so no URL credentials), no '_' or '-' (every token prefix has
# one, or is upper case), no upper case (AKIA…, AIza…), and not argv-special ('=').
HARMLESS = string.ascii_lowercase + string.digits + " .,:;/+!?()[]{}'\"#%&*~\téü中"
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


@pytest.mark.parametrize(("text", "once", "twice"), [
    ("https://a@b@host/x", "https://b@host/x", "https://host/x"),
    # a webhook match ends at ':' and its replacement uncovers a user part
    ("https://" + SLACK_HOOK[:33] + "u:p@h", "https://" + R + ":p@h", "https://h"),
])
def test_scrub_text_is_not_idempotent_around_a_second_at_today(text: str, once: str, twice: str) -> None:
    assert scrub_text(text) == once
    assert scrub_text(once) == twice

"""Secrets detector: freshly generated tokens per provider, look-alike negatives, the dev corpus."""

from __future__ import annotations

import base64
import json
import secrets as rnd
import string

import pytest

from tests.corpora import corpus, needs_corpus
from wardgate.detect.secrets import SECRET_ENTITIES, find_secrets

_CORPUS = corpus("secrets-dev.jsonl")
_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"


def _r(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'sub': _r(8), 'exp': 1})}.{_r(43, _URLSAFE)}"


def _pem(kind: str) -> str:
    lines = "\n".join(_r(64, _ALNUM + "+/") for _ in range(6))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


TOKENS = [
    ("OPENAI_KEY", lambda: "sk-proj-" + _r(156, _URLSAFE)),
    ("OPENAI_KEY", lambda: "sk-svcacct-" + _r(120, _URLSAFE)),
    ("OPENAI_KEY", lambda: "sk-admin-" + _r(80, _URLSAFE)),
    ("OPENAI_KEY", lambda: "sk-" + _r(20) + "T3BlbkFJ" + _r(20)),
    ("ANTHROPIC_KEY", lambda: "sk-ant-api03-" + _r(93, _URLSAFE) + "AA"),
    ("ANTHROPIC_KEY", lambda: "sk-ant-admin01-" + _r(93, _URLSAFE) + "AA"),
    ("AWS_ACCESS_KEY", lambda: "AKIA" + _r(16, string.ascii_uppercase + "234567")),
    ("AWS_ACCESS_KEY", lambda: "ASIA" + _r(16, string.ascii_uppercase + "234567")),
    ("GITHUB_TOKEN", lambda: rnd.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + _r(36)),
    ("GITHUB_TOKEN", lambda: "github_pat_" + _r(22) + "_" + _r(59)),
    ("GITLAB_TOKEN", lambda: "glpat-" + _r(20, _URLSAFE)),
    ("GITLAB_TOKEN", lambda: "gldt-" + _r(20, _URLSAFE)),
    ("SLACK_TOKEN", lambda: f"xoxb-{_r(12, string.digits)}-{_r(13, string.digits)}-{_r(24)}"),
    ("SLACK_TOKEN", lambda: f"xoxp-{_r(12, string.digits)}-{_r(12, string.digits)}-{_r(32, '0123456789abcdef')}"),
    ("SLACK_TOKEN", lambda: f"https://hooks.slack.com/services/T{_r(10, string.ascii_uppercase)}/B{_r(10, string.ascii_uppercase)}/{_r(24)}"),
    ("STRIPE_KEY", lambda: "sk_live_" + _r(99)),
    ("STRIPE_KEY", lambda: "rk_live_" + _r(24)),
    ("STRIPE_KEY", lambda: "sk_test_" + _r(24)),
    ("GOOGLE_API_KEY", lambda: "AIza" + _r(35, _URLSAFE)),
    ("HUGGINGFACE_TOKEN", lambda: "hf_" + _r(34, string.ascii_letters)),
    ("NPM_TOKEN", lambda: "npm_" + _r(36)),
    ("JWT", _jwt),
    ("PRIVATE_KEY", lambda: _pem("RSA ")),
    ("PRIVATE_KEY", lambda: _pem("")),
    ("PRIVATE_KEY", lambda: _pem("OPENSSH ")),
    ("DATABASE_URL", lambda: f"postgresql://app:{_r(16)}@db.prod.internal:5432/orders"),
    ("DATABASE_URL", lambda: f"mongodb+srv://svc:{_r(12)}@cluster0.abcde.mongodb.net/?retryWrites=true"),
    ("DATABASE_URL", lambda: f"redis://:{_r(20)}@cache:6379/0"),
    ("DATABASE_URL", lambda: f"amqp://guest:{_r(14)}@rabbit:5672/"),
]

CONTEXTS = [
    "{}",
    "my key is {} thanks",
    'client = Client(api_key="{}")',
    "export TOKEN={}\necho done",
    "Authorization: Bearer {}",
    "- value: '{}',",
]


@pytest.mark.parametrize(("entity", "make"), TOKENS)
@pytest.mark.parametrize("context", CONTEXTS)
def test_detects_generated_token(entity: str, make, context: str) -> None:
    token = make()
    text = context.format(token)
    start = text.index(token)
    found = find_secrets(text)
    assert [(f.entity, f.start, f.end) for f in found] == [(entity, start, start + len(token))]
    assert entity in SECRET_ENTITIES


def test_aws_secret_key_needs_its_label() -> None:
    value = _r(20, string.ascii_uppercase) + "/" + _r(19, string.ascii_lowercase + string.digits)
    labelled = f"aws_secret_access_key = {value}"
    found = find_secrets(labelled)
    assert [(f.entity, labelled[f.start : f.end]) for f in found] == [("AWS_SECRET_KEY", value)]
    assert find_secrets(f'"SecretAccessKey": "{value}"')[0].entity == "AWS_SECRET_KEY"
    assert find_secrets(f"checksum {value}") == []


def test_several_secrets_sorted_and_disjoint() -> None:
    a, b, c = "ghp_" + _r(36), "npm_" + _r(36), "AIza" + _r(35)
    found = find_secrets(f"{c} then {a}, and also {b}.")
    assert [f.entity for f in found] == ["GOOGLE_API_KEY", "GITHUB_TOKEN", "NPM_TOKEN"]
    assert all(x.end <= y.start for x, y in zip(found, found[1:]))


NEGATIVES = [
    lambda: "commit " + _r(40, "0123456789abcdef"),
    lambda: "md5 " + _r(32, "0123456789abcdef") + " sha256 " + _r(64, "0123456789abcdef"),
    lambda: f"request id {_r(8, '0123456789abcdef')}-{_r(4, '0123456789abcdef')}-4{_r(3, '0123456789abcdef')}-a{_r(3, '0123456789abcdef')}-{_r(12, '0123456789abcdef')}",
    lambda: "data:image/png;base64," + _r(400, _ALNUM + "+/") + "==",
    lambda: "Set OPENAI_API_KEY=sk-... in your shell",
    lambda: "api_key = 'sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
    lambda: "api_key = 'sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX'",
    lambda: "Authorization: Bearer <YOUR_API_KEY>",
    lambda: "token: ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    lambda: "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    lambda: "Stripe.js uses the publishable key pk_live_" + _r(24),
    lambda: "a task-based-learning-approach-for-the-classroom-setting",
    lambda: "postgres://user:password@localhost:5432/mydb",
    lambda: "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
    lambda: "https://user:" + _r(12) + "@www.example.com/path",
    lambda: "see https://docs.github.com/en/authentication and hf_hub_download()",
    lambda: "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    lambda: "the header eyJhbGciOi is base64 for {\"alg\":",
    lambda: "password = os.environ['DB_PASSWORD']",
]


@pytest.mark.parametrize("make", NEGATIVES)
def test_look_alikes_are_not_secrets(make) -> None:
    text = make()
    assert find_secrets(text) == [], text


@needs_corpus("secrets-dev.jsonl")
def test_dev_corpus_bars() -> None:
    hits = misses = false_positives = 0
    with _CORPUS.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            found = find_secrets(row["text"])
            for span in row["spans"]:
                matched = any(
                    x.entity == span["entity"] and x.start < span["end"] and span["start"] < x.end
                    for x in found
                )
                hits, misses = hits + matched, misses + (not matched)
            if not row["spans"]:
                false_positives += len(found)
    assert hits / (hits + misses) >= 0.98
    assert false_positives == 0

"""pinner.safe: each validator against its grammar, and each quoting helper round-tripped through
the parser of its context (a POSIX shell, Docker's Dockerfile parser, Python's)."""

from __future__ import annotations

import ast
import io
import json
import shlex
import shutil
import subprocess

import pytest

from pinner import safe

NASTY = [
    "plain",
    "",
    "$(touch pwned)",
    "`id`",
    "a  b",
    "'single' \"double\"",
    "back\\slash\\",
    "${HOME} $PATH",
    "# not a comment",
    "é ü 中文",
    '"""',
    "'''",
    "\\n (two characters)",
    "semi; colon && pipe | amp &",
]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ubuntu", True),
        ("ubuntu:24.04", True),
        ("nvidia/cuda:12.8.1-runtime-ubuntu24.04", True),
        ("ghcr.io/astral-sh/uv:0.9.5", True),
        ("registry.example:5000/a/b__c/d-e:tag_1.x", True),
        ("localhost/img@sha256:" + "a" * 64, True),
        ("img:tag@sha256:" + "0" * 64, True),
        ("[::1]:5000/img", True),
        ("ubuntu:24.04\nRUN x", False),
        ("ubuntu:24.04 AS x", False),
        ("--platform=x ubuntu", False),
        ("${BASE}", False),
        ("nvidia/CUDA:12", False),
        ("ubuntu:" + "a" * 129, False),
        ("ubuntu@sha256:abc", False),
        ("img/", False),
        ("/img", False),
        ("img:-tag", False),
        ("a" * 256, False),
    ],
)
def test_image_references_follow_dockers_grammar(value: str, ok: bool) -> None:
    if ok:
        assert safe.image(value) == value
    else:
        with pytest.raises(safe.Unsafe):
            safe.image(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://download.pytorch.org/whl/cu128", True),
        ("http://127.0.0.1:8080/simple/", True),
        ("file:///srv/wheels", True),
        ("https://u:p%40ss@h.example/x?a=1&b=2#f", True),
        ("https://h/$(id);(x)", True),  # legal in a URL: quoted wherever it is rendered
        ("https://h/a b", False),
        ("https://h/a\nb", False),
        ("https://h/\x1b[2J", False),
        ("https://h/\u2028", False),
        ("https://h/`id`", False),
        ("https://h/'x'", False),
        ('https://h/"x"', False),
        ("https://h/a\\b", False),
        ("https://h/{x}", False),
        ("ftp://h/x", False),
        ("javascript:alert(1)", False),
        ("//h/x", False),
        ("https:///x", False),
        ("", False),
    ],
)
def test_urls(value: str, ok: bool) -> None:
    if ok:
        assert safe.url(value) == value
    else:
        with pytest.raises(safe.Unsafe):
            safe.url(value)


def test_the_index_url_template_may_carry_its_placeholder_only() -> None:
    assert safe.url("https://h/whl/{variant}", template=True)
    with pytest.raises(safe.Unsafe):
        safe.url("https://h/whl/{variant}")
    with pytest.raises(safe.Unsafe):
        safe.url("https://h/${IFS}/{variant}", template=True)


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (safe.package_name, ["six", "Flash_Attn", "a.b-c", "x"], ["-x", "a b", "six\n", "a;b", ""]),
        (
            safe.version,
            ["2.7.1", "2.7.1+cu128", "1!2.0rc1.post2.dev3", "1.0+a.b_c-d", "v1"],
            ["2.7.1\n", "2.7 ; x", "1.0 --hash", "latest", "", "1.0+"],
        ),
        (
            safe.hash_,
            ["sha256:" + "0123456789abcdef" * 4],
            [
                "sha256:" + "A" * 64,
                "sha256:" + "0" * 63,
                "md5:" + "0" * 32,
                "sha256:" + "0" * 64 + "\n",
            ],
        ),
        (safe.env_name, ["MAX_JOBS", "_x", "a1"], ["1A", "A-B", "A B", "A\n", "A=1", ""]),
        (safe.apt_package, ["build-essential", "g++", "libc6.1"], ["Gcc", "a b", "x;y", "-x"]),
        (safe.target_name, ["a100", "rtx_5090-b"], ["A100", "a100\n", "../x", "a b", "-x"]),
        (safe.python_version, ["3.11", "3.9"], ["3.11\n", "3", "3.11.2", "2.7"]),
        (safe.variant, ["cpu", "cu128", "rocm6.4"], ["cu128 --pre", "cuda", "cu12\n"]),
        (safe.env_value, NASTY, ["a\nb", "a\rb", "a\tb", "a\x00b", "a\u2028b", "\x7f"]),
    ],
)
def test_validators(check: object, good: list[str], bad: list[str]) -> None:
    assert callable(check)
    for value in good:
        assert check(value) == value
    for value in bad:
        with pytest.raises(safe.Unsafe):
            check(value)


def test_a_value_that_is_no_string_is_refused() -> None:
    for check in (safe.package_name, safe.url, safe.image, safe.env_value, safe.hash_):
        with pytest.raises(safe.Unsafe, match="is not a string"):
            check(["x"])


@pytest.mark.parametrize("value", NASTY)
def test_shell_quoting_round_trips_through_a_real_shell(value: str) -> None:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    script = f"printf '%s' {safe.shell(value)}"

    out = subprocess.run([sh, "-c", script], capture_output=True, check=True).stdout

    assert out.decode() == value
    assert shlex.split(safe.shell(value)) == [value]


def docker_word(text: str) -> str:
    """One word as Docker's shell lexer reads it (moby/buildkit frontend/dockerfile/shell/lex.go,
    processDoubleQuote: inside double quotes a backslash escapes only `"`, `$` and itself; no
    variable is expanded once escaped). Bare words are taken as they are."""
    if not text.startswith('"'):
        return text
    assert text.endswith('"')
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in '"$\\':
            out.append(body[i + 1])
            i += 2
            continue
        assert ch not in '"$', f"unescaped {ch!r} in {text!r}"
        out.append(ch)
        i += 1
    return "".join(out)


@pytest.mark.parametrize("value", NASTY)
def test_dockerfile_values_round_trip_through_dockers_lexer(value: str) -> None:
    from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

    quoted = safe.docker_value(value)
    text = f"FROM scratch\nENV K={quoted} OTHER=1\n"
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)

    # one ENV instruction with both variables, whatever the value holds
    assert [i["instruction"] for i in parser.structure] == ["FROM", "ENV"]
    assert parser.structure[1]["value"] == f"K={quoted} OTHER=1"
    assert docker_word(quoted) == value


@pytest.mark.parametrize("value", [*NASTY, "a\nb", "\u2028"])
def test_python_literals_and_docstrings_round_trip(value: str) -> None:
    module = ast.parse(f'"""Doc: {safe.pydoc(value)}."""\nX = {safe.python_literal(value)}\n')

    assert ast.get_docstring(module, clean=False) == f"Doc: {value}."
    assign = module.body[1]
    assert isinstance(assign, ast.Assign)
    assert isinstance(assign.value, ast.Constant)
    assert assign.value.value == value


@pytest.mark.parametrize("value", ["a\nb", "a\r\nb", "x\u2028y", "\x1b[2J", "\x85", "tab\there"])
def test_comments_never_carry_a_line_break_or_control_character(value: str) -> None:
    shown = safe.comment(value)

    assert len(shown.splitlines()) == 1
    assert not safe.CONTROL.search(shown)
    assert len(ast.parse(f"# {shown}\nX = 1\n").body) == 1  # the comment ends at its line


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200f"])
def test_bidirectional_controls_are_shown_as_escapes(char: str) -> None:
    """Trojan Source: a right-to-left override in a name would make a comment or a message read
    other than it runs; it is shown escaped, and refused where a name is checked."""
    assert safe.comment(f"a{char}b") == "a" + json.dumps(char)[1:-1] + "b"
    with pytest.raises(safe.Unsafe):
        safe.package_name(f"six{char}")

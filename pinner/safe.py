"""Validators and quoting for every value that reaches a rendered file (shell script, Dockerfile,
Python source, requirements file, comment).

Two steps, always both: a value is first checked against the grammar of what it claims to be (a
URL, an image reference, a package name, a version, a hash, an environment variable), then quoted
for the context it lands in. A check raises `Unsafe` with what is wrong; callers add where the
value came from (file and key) and how to fix it. Standard library only, cheap to import: the
matrix loader, which `pinner check` runs on every commit, uses it.

Every pattern is matched with `re.fullmatch` (never `^...$`, whose `$` accepts a trailing newline).
"""

from __future__ import annotations

import json
import re
import shlex

__all__ = [
    "CONTROL",
    "Unsafe",
    "apt_package",
    "apt_version",
    "comment",
    "cuda_version",
    "docker_value",
    "env_name",
    "env_value",
    "file_name",
    "hash_",
    "image",
    "package_name",
    "pydoc",
    "python_literal",
    "python_version",
    "shell",
    "target_name",
    "text",
    "url",
    "variant",
    "version",
]


class Unsafe(ValueError):
    """A value that does not have the shape it must have; str(e) says what is wrong."""


# --- grammars ------------------------------------------------------------------------------------

# PEP 508 names (https://peps.python.org/pep-0508/#names); extras use the same grammar.
_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
# PEP 440 versions: the pattern of its appendix B (https://peps.python.org/pep-0440/), as packaging
# ships it (packaging/version.py, VERSION_PATTERN), without the surrounding whitespace.
_VERSION = re.compile(
    r"""v?(?:(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*
    (?:[-_.]?(?:alpha|a|beta|b|preview|pre|c|rc)[-_.]?[0-9]*)?
    (?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?
    (?:[-_.]?dev[-_.]?[0-9]*)?)
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?""",
    re.VERBOSE | re.IGNORECASE,
)
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Debian policy 5.6.1 (https://www.debian.org/doc/debian-policy/ch-controlfields.html#source)
_APT = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# Debian policy 5.6.12: [epoch:]upstream_version[-debian_revision]; upstream starts with a digit
# (https://www.debian.org/doc/debian-policy/ch-controlfields.html#version)
_APT_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*")
_TARGET = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PYTHON = re.compile(r"3\.[0-9]{1,2}")
_VARIANT = re.compile(r"cpu|cu[0-9]{2,4}|rocm[0-9]+(?:\.[0-9]+)*|xpu")
_CUDA = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# Docker's reference grammar (distribution/reference, reference.go / regexp.go):
#   reference := name [ ":" tag ] [ "@" digest ];  name := [domain '/'] path-component ['/' ...]
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?",
    re.ASCII,
)
_URL_SCHEMES = ("http", "https", "file")
# Characters that end a line somewhere (Python's str.splitlines, shells, Dockerfiles), every other
# control character, and the bidirectional controls (a name must read as it runs):
# none of them belongs in a value that is rendered.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(value: str) -> str:
    short = value if len(value) <= 80 else value[:77] + "..."
    return repr(short)


def _control(value: str) -> str:
    found = CONTROL.search(value)
    if found is None:
        return ""
    ch = found.group()
    name = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL"}
    return name.get(ch, f"the control character {ch!r}")


def _check(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        msg = f"{value!r} is not a string ({what} expected)"
        raise Unsafe(msg)
    if CONTROL.search(value):
        msg = f"{_shown(value)} contains {_control(value)}; {what} is one line of printable text"
        raise Unsafe(msg)
    if not pattern.fullmatch(value):
        msg = f"{_shown(value)} is not {what}"
        raise Unsafe(msg)
    return value


# --- validators: each returns the value unchanged, or raises Unsafe ------------------------------


def package_name(value: object) -> str:
    return _check(value, _NAME, "a package name (PEP 508: letters, digits, '.', '_', '-')")


def version(value: object) -> str:
    return _check(value, _VERSION, "a version (PEP 440, e.g. 2.7.1 or 2.7.1+cu128)")


def hash_(value: object) -> str:
    return _check(value, _HASH, "a hash ('sha256:' and 64 lowercase hex digits)")


def sha256_hex(value: object) -> str:
    return _check(value, _HEX64, "a sha256 digest (64 lowercase hex digits)")


def env_name(value: object) -> str:
    return _check(value, _ENV_NAME, "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")


def env_value(value: object) -> str:
    """Any one line of printable text (quoted wherever it is rendered)."""
    return text(value, "an environment variable value")


def apt_package(value: object) -> str:
    return _check(value, _APT, "a Debian package name (lowercase letters, digits, '+', '.', '-')")


def apt_version(value: object) -> str:
    """A Debian version; a ':' after the first needs an epoch, as in the policy."""
    checked = _check(
        value, _APT_VERSION, "a Debian version ([epoch:]upstream[-revision], e.g. 1.2.2-1)"
    )
    if ":" in checked and not re.fullmatch(r"[0-9]+:.*", checked):
        msg = f"{_shown(checked)} has a ':' but no epoch; a Debian version is [epoch:]upstream[-revision]"
        raise Unsafe(msg)
    return checked


def target_name(value: object) -> str:
    return _check(value, _TARGET, "a target name (lowercase letters, digits, '_' and '-')")


def python_version(value: object) -> str:
    return _check(value, _PYTHON, 'a Python version such as "3.11"')


def variant(value: object) -> str:
    return _check(value, _VARIANT, "a torch build variant (cpu, cu128, ...)")


def cuda_version(value: object) -> str:
    if value == "":
        return ""
    return _check(value, _CUDA, 'a CUDA version such as "12.8"')


def file_name(value: object) -> str:
    return _check(value, _FILE, "a file name (letters, digits, '.', '_', '+', '-')")


def image(value: object) -> str:
    """A Docker image reference (name, optional tag, optional digest)."""
    checked = _check(
        value, _IMAGE, "an image reference such as nvidia/cuda:12.8.1-runtime-ubuntu24.04"
    )
    if len(checked) > 255:
        msg = f"{_shown(checked)} is longer than an image reference may be (255 characters)"
        raise Unsafe(msg)
    return checked


def url(value: object, *, template: bool = False) -> str:
    """An http, https or file URL without whitespace or control characters. `template`: the
    `{variant}` placeholder of the torch index URL is allowed."""
    if not isinstance(value, str):
        msg = f"{value!r} is not a string (a URL expected)"
        raise Unsafe(msg)
    if CONTROL.search(value):
        msg = f"{_shown(value)} contains {_control(value)}; a URL is one line without spaces"
        raise Unsafe(msg)
    if re.search(r"\s", value):
        msg = f"{_shown(value)} contains whitespace; percent-encode it (%20)"
        raise Unsafe(msg)
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in _URL_SCHEMES:
        msg = f"{_shown(value)} is not an http://, https:// or file:// URL"
        raise Unsafe(msg)
    host = rest.split("/", 1)[0]
    if scheme.lower() != "file" and not host.rsplit("@", 1)[-1]:
        msg = f"{_shown(value)} names no host"
        raise Unsafe(msg)
    body = value.replace("{variant}", "") if template else value
    # RFC 3986 characters plus '%'; quotes, backslashes, braces, '<', '>', '`', '^' and '|' are
    # never needed unencoded.
    bad = re.search(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]", body)
    if bad or "'" in body:
        ch = bad.group() if bad else "'"
        msg = f"{_shown(value)} contains {ch!r}, which a URL carries percent-encoded"
        raise Unsafe(msg)
    return value


def text(value: object, what: str = "text") -> str:
    """One line of printable text (free text: a GPU's name, a reason)."""
    if not isinstance(value, str):
        msg = f"{value!r} is not a string ({what} expected)"
        raise Unsafe(msg)
    if CONTROL.search(value):
        msg = f"{_shown(value)} contains {_control(value)}; {what} is one line of printable text"
        raise Unsafe(msg)
    return value


# --- quoting, per context ------------------------------------------------------------------------


def shell(value: str) -> str:
    """A POSIX shell word (install.sh, a Dockerfile's shell-form RUN)."""
    return shlex.quote(value)


def docker_value(value: str) -> str:
    """A Dockerfile ENV/ARG value: bare when plainly safe, else double-quoted with the
    characters Docker interprets inside double quotes (backslash, quote, `$`) escaped."""
    text(value, "a Dockerfile value")
    if re.fullmatch(r"[A-Za-z0-9_.:/,+-]+", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def python_literal(value: str) -> str:
    """A Python string literal (repr is exact and always one line)."""
    return repr(value)


def pydoc(value: str) -> str:
    """Text placed inside a triple-quoted (non-raw) docstring: backslashes, quotes and control
    characters escaped, so it can neither end the string nor the line."""
    return repr(value)[1:-1].replace('"', '\\"')


def comment(value: object) -> str:
    """Text placed after `#` in any file: control characters and line separators shown as
    escapes, so a comment never carries a raw newline."""
    raw = str(value)
    return CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], raw)

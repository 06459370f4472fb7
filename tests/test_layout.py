"""The package layout: one top-level package whose subpackages are the
repository's top-level folders, layered (runtime at the bottom, never
writing), no import cycles, and Keras' internals read in one module."""

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every subpackage and its layer: a package may import only packages of lower
# layers (and itself). The runtime is at the bottom; ``files`` (writing a
# user's files) and ``models`` (the zoo) stand beside each other on it.
LAYERS = {"runtime": 0, "files": 1, "models": 1, "exporter": 2, "verify": 3, "bench": 4, "cli": 5}
SUBPACKAGES = tuple(LAYERS)


def _modules() -> dict[str, Path]:
    """Every module of the ``parity`` namespace, by dotted name, from the source
    folders: ``parity/`` itself, and each top-level folder ``X/`` as ``parity.X``."""
    found = {}
    for folder in (*SUBPACKAGES, "parity"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[0] != "parity":
                parts = ("parity", *parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def test_every_top_level_folder_with_code_is_a_subpackage_and_parity_holds_only_the_root():
    folders = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in ("tests", "parity")
    }
    assert folders == set(SUBPACKAGES)
    assert sorted(p.name for p in (ROOT / "parity").iterdir() if p.name != "__pycache__") == [
        "__init__.py",
        "__main__.py",
    ]
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {name: folder for name, folder in mapped["package-dir"].items()} == {
        "parity": "parity",
        **{
            f"parity.{path.relative_to(ROOT).as_posix().replace('/', '.')}": path.relative_to(
                ROOT
            ).as_posix()
            for package in SUBPACKAGES
            for path in [ROOT / package, *(ROOT / package).glob("*/")]
            if (path / "__init__.py").is_file()
        },
    }
    assert sorted(mapped["packages"]) == sorted(mapped["package-dir"])


def test_packages_import_only_lower_layers():
    """runtime <- files, models <- exporter <- verify <- bench <- cli, with
    imports inside functions counted too."""
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        package = name.split(".")[1] if name.count(".") else "parity"
        if package not in LAYERS:
            continue
        for imported in _imports(path, modules):
            other = imported.split(".")[1] if imported.count(".") else "parity"
            if other != package and not LAYERS.get(other, -1) < LAYERS[package]:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_the_runtime_imports_only_numpy_onnx_and_onnxruntime():
    allowed = {"numpy", "onnx", "onnxruntime", "parity", *sys.stdlib_module_names}
    found = set()
    for name, path in _modules().items():
        if name.startswith("parity.runtime"):
            found |= {f"{name}: {root}" for root in _import_roots(path) if root not in allowed}
    assert not found


def test_the_runtime_never_writes():
    """No call in the runtime creates, changes or removes a file: an app that
    embeds it may run on a read-only file system."""
    writes = {
        *("write_bytes", "write_text", "rename", "replace", "unlink", "rmdir", "mkdir"),
        *("remove", "rmtree", "mkdtemp", "mkstemp", "chmod", "savez", "save", "touch"),
    }
    found = []
    for name, path in _modules().items():
        if not name.startswith("parity.runtime"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            called = (
                function.attr
                if isinstance(function, ast.Attribute)
                else getattr(function, "id", "")
            )
            if called in writes:
                found.append(f"{name}:{node.lineno} {called}")
            if called == "open" and len(node.args) > 1:
                mode = node.args[1]
                if not (isinstance(mode, ast.Constant) and set(str(mode.value)) <= set("rbt")):
                    found.append(f"{name}:{node.lineno} open for writing")
    assert not found


def test_nothing_is_importable_under_two_names():
    code = (
        "import importlib, parity.cli, parity.runtime\n"
        "for name in ('parity.parity', 'parity.tests', 'parity.commands'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    raise SystemExit(name + ' imports')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr + done.stdout


def _import_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The parity modules that ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in modules}


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # a package's __init__ re-exports its modules: follow modules, not packages
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    graph = {name: {d for d in deps if d not in packages} for name, deps in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# Keras' private attributes and the attributes of its graph's ``Node`` objects:
# read by the adapter over Keras' graph alone, which gives the rest parity's records.
KERAS_INTERNALS = frozenset(
    {
        *("_keras_history", "_inbound_nodes", "_nodes_by_depth", "_flatten_layers"),
        *("operation", "input_tensors", "output_tensors", "arguments", "call_args", "fill_in"),
    }
)
ADAPTER = ROOT / "exporter" / "keras_graph.py"


def _keras_internals(path: Path) -> list[str]:
    """Where ``path`` reads one of :data:`KERAS_INTERNALS`: as an attribute, or
    by name (``getattr(x, "_keras_history")``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
        else:
            continue
        if name in KERAS_INTERNALS:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_keras_internals_are_read_in_one_module():
    found = [
        place for path in _modules().values() if path != ADAPTER for place in _keras_internals(path)
    ]
    assert not found, "\n".join(found)
    assert _keras_internals(ADAPTER)  # the check finds what it looks for


def test_no_bare_top_level_imports():
    """Every first-party import goes through ``parity.``: no module named
    ``runtime`` or ``verify`` of a user's can be picked up instead."""
    bare = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            roots = []
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = [node.module.split(".")[0]]
            bare += [f"{name}: {root}" for root in roots if root in SUBPACKAGES]
    assert not bare


def test_user_modules_named_like_subpackages_do_not_shadow(tmp_path):
    """A user's own ``runtime.py`` and ``verify.py`` beside their code."""
    (tmp_path / "runtime.py").write_text("raise SystemExit('user runtime imported')\n")
    (tmp_path / "verify.py").write_text("raise SystemExit('user verify imported')\n")
    code = (
        "from parity import runtime, verify\n"
        "from parity.verify import assert_equivalent\n"
        "print(runtime.load_bundle.__module__, assert_equivalent.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["parity.runtime.bundle", "parity.verify.testing"]


def test_wheel_holds_one_top_level_package(parity_wheel, tmp_path):
    """The wheel installs ``parity`` alone, with every subpackage inside it, and
    imports from a folder that is not the checkout."""
    wheel = parity_wheel
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"parity"}
    for sub in (*SUBPACKAGES, "runtime/bundle_format", "cli/commands"):
        assert f"parity/{sub}/__init__.py" in names
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "import parity.runtime, parity.verify, parity.exporter, parity.models, parity.bench, "
    code += "parity.files, parity.cli.app;"
    code += "print(parity.runtime.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(target))

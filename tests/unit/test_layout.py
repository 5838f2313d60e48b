"""Guards that keep the layout true: code grouped by where it runs, layered, without cycles, with
one place that reads ``cluster.mode``, and one contract between the hub and the container.

The layers, from the bottom: ``core`` (pure) <- ``backends`` (one per cluster mode) <- ``hub``
<- ``admin``; ``agents`` (on GPU nodes) use ``core`` only. A backend's ``spawner.py`` is the one
place a backend reaches up: it extends the hub's spawner base.
"""

import ast
import os
import re

import pytest

from gpulab.core import contract

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(REPO, "spawner")
#: what pure code may not import: engines, servers, databases, processes, the network
IMPURE = {
    "docker",
    "dockerspawner",
    "jupyterhub",
    "tornado",
    "traitlets",
    "sqlite3",
    "subprocess",
    "socket",
    "requests",
    "prometheus_client",
}
IMPURE |= {
    "oauthenticator",
    "nativeauthenticator",
    "urllib.request",
    "http.client",
    "asyncio.subprocess",
}


def source(path):
    with open(path) as f:
        return f.read()


def modules():
    """{module name: (path, [(imported module, line)])} of the gpulab package, every import
    (at the top or inside a function) resolved to the module it names."""
    out = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
            mod = "gpulab" if rel == "__init__" else "gpulab." + rel.removesuffix(".__init__")
            out[mod] = (path, [])
    for mod, (path, imports) in out.items():
        is_pkg = path.endswith("__init__.py")
        for node in ast.walk(ast.parse(source(path), path)):
            if isinstance(node, ast.Import):
                imports += [(a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".")[
                        : len(mod.split(".")) - node.level + (1 if is_pkg else 0)
                    ]
                    base = ".".join(parts + ([base] if base else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    imports.append((full if full in out else base, node.lineno))
    return out


MODULES = modules()


#: what both backends share, beside them in gpulab.backends
SHARED = ("gpulab.backends.engine", "gpulab.backends.container", "gpulab.backends.firewall")


def layer(mod):
    parts = mod.split(".")
    return (
        parts[1]
        if len(parts) > 1 and parts[1] in ("core", "backends", "hub", "admin", "agents")
        else "top"
    )


def gpulab_imports(mod):
    return [(m, line) for m, line in MODULES[mod][1] if m == "gpulab" or m.startswith("gpulab.")]


def test_the_package_is_grouped_by_where_code_runs():
    tops = sorted({layer(m) for m in MODULES})
    assert tops == ["admin", "agents", "backends", "core", "hub", "top"]
    assert sorted(m for m in MODULES if layer(m) == "top") == ["gpulab", "gpulab._version"], (
        "only the package's face lives at the top"
    )


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if layer(m) == "core"))
def test_core_imports_nothing_above_it_and_nothing_impure(mod):
    for imported, line in MODULES[mod][1]:
        if imported.startswith("gpulab"):
            assert imported.startswith("gpulab.core"), (
                f"{mod}:{line} imports {imported}: core imports only core"
            )
        assert imported.split(".")[0] not in IMPURE and imported not in IMPURE, (
            f"{mod}:{line} imports {imported}: core is pure"
        )


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if layer(m) == "backends"))
def test_backends_import_core_only(mod):
    own = ".".join(mod.split(".")[:3])  # gpulab.backends.<name> (or a shared module)
    for imported, line in gpulab_imports(mod):
        if (
            imported.startswith("gpulab.core")
            or imported == "gpulab.backends"
            or imported in SHARED
        ):
            continue
        if imported.startswith(own + ".") or imported == own:
            continue
        if mod.endswith(".spawner") and imported.startswith("gpulab.hub"):
            continue  # a backend's spawner extends the hub's spawner base
        if mod == "gpulab.backends":
            assert imported in ("gpulab.backends.docker", "gpulab.backends.swarm"), (
                f"{mod}:{line} imports {imported}"
            )
            continue
        pytest.fail(
            f"{mod}:{line} imports {imported}: a backend imports core (and its own folder) only"
        )


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if layer(m) == "agents"))
def test_agents_import_core_only(mod):
    for imported, line in gpulab_imports(mod):
        assert imported.startswith("gpulab.core") or imported == "gpulab.agents", (
            f"{mod}:{line} imports {imported}: agents run on GPU nodes"
        )


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if layer(m) == "hub"))
def test_the_hub_does_not_reach_admin_agents_or_a_backends_internals(mod):
    for imported, line in gpulab_imports(mod):
        assert layer(imported) not in ("admin", "agents"), f"{mod}:{line} imports {imported}"
        if layer(imported) == "backends":
            assert imported in ("gpulab.backends", "gpulab.backends.engine"), (
                f"{mod}:{line} imports {imported}: the hub asks the backend (gpulab.backends.select / Deployment.backend)"
            )


def test_the_package_imports_itself_relatively():
    # the package does not name itself (it is installed as gpulab from spawner/); the one file
    # loaded by path (the culler's config, no package around it) is the exception
    by_path = {os.path.join(PACKAGE, "hub", "idle_culler_config.py")}
    named = [
        f"{os.path.relpath(path, REPO)}:{node.lineno}"
        for path, _ in MODULES.values()
        if path not in by_path
        for node in ast.walk(ast.parse(source(path)))
        if (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "gpulab"
        )
        or (
            isinstance(node, ast.Import)
            and any(a.name.split(".")[0] == "gpulab" for a in node.names)
        )
    ]
    assert not named, named


def test_no_import_cycles():
    graph = {m: {i for i, _ in gpulab_imports(m) if i in MODULES and i != m} for m in MODULES}
    # a package's __init__ importing its own children is not a cycle of code
    for m in graph:
        if MODULES[m][0].endswith("__init__.py"):
            graph[m] = {i for i in graph[m] if not i.startswith(m + ".")}
    seen, stack, cycles = {}, [], []

    def visit(m):
        seen[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if seen.get(n) == "open":
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in seen:
                visit(n)
        stack.pop()
        seen[m] = "done"

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cluster_mode_is_read_in_one_place():
    """The site schema validates the keys that depend on it; select() picks the backend."""
    readers = []
    for mod, (path, _) in MODULES.items():
        text = source(path)
        for m in re.finditer(r"""(\bcluster|\[["']cluster["']\])\[["']mode["']\]""", text):
            line = text.count("\n", 0, m.start()) + 1
            readers.append((mod, line))
    modules_reading = sorted({m for m, _ in readers})
    assert modules_reading == ["gpulab.backends", "gpulab.core.site.model"], readers
    backends_src = source(MODULES["gpulab.backends"][0])
    assert backends_src.count('["cluster"]["mode"]') == 1, (
        "select() is the one reader in the backends"
    )


# --- the contract between the hub and the container ---

CONTAINER_SIDE = [os.path.join(REPO, "images", "base", "gpulab-start")] + [
    os.path.join(root, f)
    for root, _, files in os.walk(os.path.join(REPO, "hooks"))
    for f in files
    if not f.endswith((".svg", ".pyc", ".json"))
]
ENV_NAME = re.compile(r"\b(?:GPULAB|NB)_[A-Z][A-Z0-9_]*\b")
LABEL = re.compile(r"^gpulab\.[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$")
NOT_LABELS = {"gpulab.yaml", "gpulab.service", "gpulab.example.yaml", "gpulab.yaml.restored"}


def contract_values():
    return {v for k, v in vars(contract).items() if k.isupper() and isinstance(v, str)}


def test_every_variable_the_container_side_and_the_hub_use_is_in_the_contract():
    defined = contract_values()
    used = {}
    for path in CONTAINER_SIDE + [p for p, _ in MODULES.values()]:
        with open(path, errors="replace") as f:
            for name in ENV_NAME.findall(f.read()):
                used.setdefault(name, path)
    missing = {
        name: os.path.relpath(path, REPO) for name, path in used.items() if name not in defined
    }
    assert not missing, f"not defined in gpulab.core.contract: {missing}"


def test_every_gpulab_label_is_in_the_contract():
    defined = contract_values()
    used = {}
    for mod, (path, _) in MODULES.items():
        for node in ast.walk(ast.parse(source(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and LABEL.match(node.value)
            ):
                value = node.value
                if value in NOT_LABELS or value.startswith(
                    tuple(f"{m}" for m in MODULES if m != "gpulab")
                ):
                    continue  # a file or a module name, not a label
                used.setdefault(value, mod)
    for name in ("base", "hub", "pytorch"):
        with open(os.path.join(REPO, "images", name, "Dockerfile")) as f:
            for label in re.findall(r"^LABEL (gpulab\.[a-z.-]+)=", f.read(), re.M):
                used.setdefault(label, f"images/{name}/Dockerfile")
    missing = {label: where for label, where in used.items() if label not in defined}
    assert not missing, f"labels not defined in gpulab.core.contract: {missing}"
    assert used, "the scan found the labels gpulab uses"

"""The package's shape: no import cycles, light paths stay torch-free, BM25 only in its own package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rayir"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every rayir module ``path`` imports, at the top or inside functions (deferred imports hide
    cycles, they do not remove them); ``if TYPE_CHECKING:`` blocks never run and are skipped.
    Importing ``a.b.c`` also runs the package ``a.b``'s ``__init__``, unless that package holds the
    importing module (a package is always initialised before its modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            targets = []
        for target in targets:
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                own_package = name.startswith(candidate + ".")
                if candidate in modules and candidate != name and not own_package:
                    found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_no_import_cycles_in_the_package():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, set(paths)) for name, path in paths.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                walk(target)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert len(graph) > 50  # the walk really saw the package


def test_the_word_bm25_is_compared_only_inside_the_lexical_package():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "lexical" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                constants = [n for n in ast.walk(node) if isinstance(n, ast.Constant)]
                if any(isinstance(c.value, str) and c.value.lower() == "bm25" for c in constants):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders


def run_without_torch(code: str, tmp_path: Path) -> None:
    script = (
        "import sys\n" + code + "\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'lightning') if m in sys.modules)\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "IR_DATASETS_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_evaluate_and_the_cli_help_do_not_import_torch(tmp_path):
    run_without_torch("import rayir.evaluate", tmp_path)
    run_without_torch("from rayir.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass", tmp_path)


def test_a_bm25_index_and_search_do_not_import_torch(sample_collection, tmp_path):
    run_without_torch(
        "from rayir.cli import index, search\nfrom rayir.options import EncodingOptions\n"
        f"index({str(sample_collection)!r}, 'out', 'bm25', num_shards=2, encoding=EncodingOptions(docs_per_shard=10), "
        "in_process=True)\n"
        f"summary = search('out/index', {str(sample_collection)!r}, 'test.run', split='test', "
        f"qrels={str(sample_collection)!r}, in_process=True)\n"
        "assert summary['queries'] == 8 and summary['nDCG@10'] > 0.5, summary",
        tmp_path,
    )

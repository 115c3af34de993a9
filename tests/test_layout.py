"""How the project is put together: one installed name, and commands that answer --help without
importing what they do not need."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Installed only as ftcl's subpackages: imported by their top-level name, a module would load twice.
SUBPACKAGES = ("kernels", "evaluation", "train")


def test_the_project_imports_its_subpackages_through_ftcl_only():
    offenders = []
    for folder in ("ftcl", *SUBPACKAGES, "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            if (ROOT / "ftcl") in path.parents and path.parent != ROOT / "ftcl":
                continue  # the links ftcl/kernels, ... are the top-level folders again
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names
                              if name.split(".")[0] in SUBPACKAGES]
    assert not offenders, offenders


def _modules_after_help(module):
    code = (f"import runpy, sys, json; sys.argv = [{module!r}, '--help']\n"
            f"try:\n    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
            f"except SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module,unneeded", [
    ("evaluation", {"torch", "triton", "sklearn", "pandas", "matplotlib", "scipy"}),
    ("ftcl.evaluate", {"sklearn", "matplotlib", "triton", "scipy"}),
    ("train", {"sklearn", "matplotlib", "scipy"}),
])
def test_help_imports_only_what_it_needs(module, unneeded):
    assert not _modules_after_help(module) & unneeded


def test_another_top_level_kernels_package_and_ours_import_side_by_side(tmp_path):
    """A package named `kernels` elsewhere on the path (Hugging Face's, say) stays `kernels`; ours is
    ftcl.kernels, and the training code runs with both loaded (outside the checkout, where pip's
    install, not the working directory, provides ftcl)."""
    other = tmp_path / "site" / "kernels"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("WHO = 'another kernels package'\n")
    code = ("import kernels, torch\n"
            "from ftcl import kernels as ours\n"
            "from ftcl.train import loop\n"
            "assert kernels.WHO == 'another kernels package', kernels\n"
            "sim = torch.rand(2, 5, 4, requires_grad=True)\n"
            "ours.lcs_score(sim, threshold=0.5).sum().backward()\n"
            "print(ours.__name__, sim.grad.shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "ftcl.kernels"


def test_hugging_face_kernels_and_ours_import_side_by_side(tmp_path):
    """Where Hugging Face's kernels package is installed too (it is not a dependency)."""
    probe = subprocess.run([sys.executable, "-c", "import kernels; print(hasattr(kernels, 'get_kernel'))"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
    if probe.stdout.strip() != "True":
        pytest.skip("Hugging Face's kernels package is not installed here")
    code = ("import kernels\nfrom ftcl import kernels as ours\n"
            "print(hasattr(kernels, 'get_kernel'), ours.__name__, callable(ours.fsd))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["True", "ftcl.kernels", "True"], out.stderr[-2000:]


def test_tests_and_benchmarks_use_the_kernels_public_surface():
    """The kernels' tuning is set with kernels.configure: no test or benchmark patches a module of
    ftcl.kernels (setattr on it) or imports one of its private names."""
    offenders = []
    for folder in ("bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            kernel_modules = {alias.asname or alias.name for node in ast.walk(tree)
                              if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ftcl.kernels")
                              for alias in node.names}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ftcl.kernels"):
                    offenders += [f"{path.relative_to(ROOT)}: imports {a.name}" for a in node.names
                                  if a.name.startswith("_")]
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "setattr" and node.args and isinstance(node.args[0], ast.Name)
                        and node.args[0].id in kernel_modules | {"kernels"}):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: setattr on {node.args[0].id}")
                if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                        and isinstance(node.value, ast.Name) and node.value.id in kernel_modules):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offenders, offenders

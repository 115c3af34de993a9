"""How the project is put together: one installed name, and commands that answer --help without
importing what they do not need."""
import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Installed only as ftcl's subpackages: imported by their top-level name, a module would load twice.
SUBPACKAGES = ("kernels", "evaluation", "train")


def test_the_project_imports_its_subpackages_through_ftcl_only():
    offenders = []
    for folder in ("ftcl", *SUBPACKAGES, "bench", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
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
    ("ftcl.evaluation", {"torch", "triton", "sklearn", "pandas", "matplotlib", "scipy"}),
    ("ftcl.evaluate", {"sklearn", "matplotlib", "triton", "scipy"}),
    ("ftcl.train", {"sklearn", "matplotlib", "scipy"}),
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


def _tracked():
    return subprocess.run(["git", "ls-files", "-s"], capture_output=True, text=True, cwd=ROOT, check=True).stdout


def test_the_wheel_holds_each_module_once_under_ftcl(tmp_path):
    """Built from the tracked files alone: every .py of ftcl/, kernels/, train/ and evaluation/ is in
    the wheel once, under ftcl/ (kernels/x.py as ftcl/kernels/x.py), and nothing else is; no
    symbolic link is tracked."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    entries = [line.split(maxsplit=3) for line in _tracked().splitlines()]
    assert not [path for mode, _, _, path in entries if mode == "120000"], "symbolic links are tracked"
    tree = tmp_path / "tree"
    for _, _, _, path in entries:
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, tree / path)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "dist"), str(tree)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("ftcl-*.whl")
    names = [name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name]
    assert len(names) == len(set(names))
    folders = {"ftcl": "ftcl", "kernels": "ftcl/kernels", "train": "ftcl/train", "evaluation": "ftcl/evaluation"}
    expected = {folders[path.split("/")[0]] + path[len(path.split("/")[0]):] for _, _, _, path in entries
                if path.endswith(".py") and path.split("/")[0] in folders}
    assert set(names) == expected


def test_the_tools_run_from_any_directory(tmp_path):
    """python -m ftcl.<tool> --help from outside the checkout, and every console script names a
    function that exists."""
    for module in ("ftcl.train", "ftcl.evaluation", "ftcl.train.curves"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert out.returncode == 0 and "usage:" in out.stdout, (module, out.stderr[-2000:])
    # The installed distribution's metadata, read outside the checkout (whose own build leftovers
    # would be found first there).
    code = ("import importlib.metadata as m, json\n"
            "print(json.dumps({e.name: callable(e.load()) for e in m.entry_points(group='console_scripts')"
            " if e.name.startswith('ftcl-')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == {name: True for name in ("ftcl-train", "ftcl-curves", "ftcl-evaluate", "ftcl-score",
                                                              "ftcl-localize", "ftcl-convert", "ftcl-synthetic")}

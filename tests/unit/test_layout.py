"""The layout rules: scripts are entry points that nothing imports,
library modules stay small enough to read, and nothing that a
single-process run imports needs MPI."""
import ast
import glob
import os

from helpers import ROOT

MAX_LINES = 400


def python_files(*patterns):
    return sorted(path for pattern in patterns
                  for path in glob.glob(os.path.join(ROOT, pattern)))


def is_script(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    return any(isinstance(node, ast.If) and "__name__" in ast.unparse(
        node.test) and '__main__' in ast.unparse(node.test)
        for node in tree.body)


def imported_names(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                not node.level:
            yield node.module.split('.')[0]


SCRIPTS = {os.path.basename(path)[:-3] for path in python_files('*.py')
           if is_script(path)}


def test_the_scripts_are_the_commands():
    assert SCRIPTS == {'train_mnist', 'train_mnist_mn', 'evaluate', 'export',
                       'infer_packed', 'bench', 'bench_packed',
                       'bench_allreduce', 'sweep', 'plot_error'}


def test_the_scripts_run_as_commands():
    # The README runs them as ./train_mnist.py: executable, with a shebang.
    for name in sorted(SCRIPTS):
        path = os.path.join(ROOT, name + '.py')
        with open(path) as f:
            assert f.readline() == '#!/usr/bin/env python3\n', name
        assert os.access(path, os.X_OK), '{}.py is not executable'.format(
            name)


def test_no_module_imports_a_script():
    offenders = [
        '{} imports {}'.format(os.path.relpath(path, ROOT), name)
        for path in python_files('*.py', 'tests/*.py')
        for name in imported_names(path) if name in SCRIPTS]
    assert offenders == []


def test_no_module_is_over_the_size_limit():
    sizes = {}
    for path in python_files('*.py'):
        with open(path) as f:
            sizes[os.path.basename(path)] = len(f.read().splitlines())
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_single_process_scripts_do_not_import_chainermn():
    import subprocess
    import sys
    code = ('import sys, runpy; sys.argv = ["x", "--help"]\n'
            'for script in ("train_mnist", "evaluate", "export", '
            '"infer_packed", "bench", "bench_packed"):\n'
            '    try:\n'
            '        runpy.run_path(script + ".py", run_name="__main__")\n'
            '    except SystemExit:\n'
            '        pass\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("chainermn", "mpi4py")))')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '[]'

"""The layout rules of the tree: at the top, the original suite's files
and the commands; everything else in the quantized_net package, whose
modules form no import circle, use no other module's private names and
never import a command."""
import ast
import glob
import os
import subprocess
import sys

from helpers import ROOT

#: The Chainer model, at the top: the original suite's files under their own
#: names, and the convolution's link/function pair beside the linear one.
ORIGINAL = {'net', 'qst', 'link_quantized_linear',
            'function_quantized_linear', 'link_quantized_convolution_2d',
            'function_quantized_convolution_2d', 'weight_clip'}
#: The commands, each run as ./NAME.py; train_mnist is the original's.
COMMANDS = {'train_mnist', 'train_mnist_mn', 'train_cifar10', 'train_svhn',
            'evaluate', 'export', 'infer_packed', 'bench', 'bench_packed', 'bench_allreduce',
            'sweep', 'plot_error', 'summary'}
PACKAGE = 'quantized_net'


def top_level():
    return {os.path.basename(path)[:-3]
            for path in glob.glob(os.path.join(ROOT, '*.py'))}


def package_modules():
    """``{module name: path}`` of every module of the package."""
    modules = {}
    for folder, subfolders, names in os.walk(os.path.join(ROOT, PACKAGE)):
        subfolders[:] = [d for d in subfolders if d != '__pycache__']
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts.pop()
                modules['.'.join(parts)] = path
    return modules


MODULES = package_modules()


def parse(path):
    with open(path) as f:
        return ast.parse(f.read(), path)


def imports(path):
    """``[(module, names)]`` that ``path`` imports anywhere in it, names
    the ``from`` names (empty for ``import x``), project modules resolved:
    ``from quantized_net.packed import format`` imports the module
    ``quantized_net.packed.format``."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module + '.' + alias.name
                       for alias in node.names
                       if node.module + '.' + alias.name in MODULES]
            names = tuple(alias.name for alias in node.names
                          if node.module + '.' + alias.name not in MODULES)
            found.extend((module, ()) for module in modules)
            if names:
                found.append((node.module, names))
    return found


def project_files():
    return sorted(list(MODULES.values()) + glob.glob(os.path.join(
        ROOT, '*.py')) + glob.glob(os.path.join(ROOT, 'tests', '**',
                                                '*.py'), recursive=True))


def test_the_top_level_is_the_original_and_the_commands():
    assert top_level() == ORIGINAL | COMMANDS


def test_the_commands_run_as_commands():
    for name in sorted(COMMANDS):
        path = os.path.join(ROOT, name + '.py')
        with open(path) as f:
            assert f.readline() == '#!/usr/bin/env python3\n', name
        assert os.access(path, os.X_OK), name + '.py is not executable'
        assert any(isinstance(node, ast.If) and
                   '__main__' in ast.unparse(node.test)
                   for node in parse(path).body), name


def test_no_module_imports_a_command():
    offenders = ['{} imports {}'.format(os.path.relpath(path, ROOT), module)
                 for path in project_files()
                 for module, _ in imports(path) if module in COMMANDS]
    assert offenders == []


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in project_files():
        own = os.path.relpath(path, ROOT)
        for module, names in imports(path):
            if module.split('.')[0] not in ORIGINAL | {PACKAGE}:
                continue  # other libraries' tests may need their insides
            offenders.extend('{}: from {} import {}'.format(own, module, n)
                             for n in names
                             if n.startswith('_') and not n.startswith('__'))
        imported = {alias.asname or alias.name.split('.')[-1]
                    for node in ast.walk(parse(path))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names
                    if (getattr(node, 'module', None) or '').startswith(
                        PACKAGE) or alias.name.startswith(PACKAGE) or
                    alias.name in ORIGINAL}
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Attribute) and \
                    isinstance(node.value, ast.Name) and \
                    node.value.id in imported and \
                    node.attr.startswith('_') and \
                    not node.attr.startswith('__'):
                offenders.append('{}:{}: {}.{}'.format(
                    own, node.lineno, node.value.id, node.attr))
    assert offenders == []


def dependencies():
    """``{module: set of project modules it imports}`` (the package's and
    the original's files)."""
    graph = {}
    for module, path in MODULES.items():
        graph[module] = {name for name, _ in imports(path)
                         if name in MODULES and name != module}
    return graph


def test_no_import_circles():
    graph = dependencies()
    circles = []
    state = {}

    def visit(module, stack):
        state[module] = 'open'
        for other in sorted(graph[module]):
            if state.get(other) == 'open':
                circles.append(stack[stack.index(other):] + [other])
            elif other not in state:
                visit(other, stack + [other])
        state[module] = 'done'
    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_quantization_stands_alone():
    # A spec becomes bits without the model, the trainer or the engine.
    for module, path in MODULES.items():
        if module.startswith(PACKAGE + '.quantization'):
            used = {name for name, _ in imports(path)}
            assert not used & ORIGINAL, module
            assert not [name for name in used if name.startswith((
                PACKAGE + '.training', PACKAGE + '.packed'))], module


def test_the_training_part_builds_the_model_in_one_place():
    users = sorted(module for module, path in MODULES.items()
                   if {name for name, _ in imports(path)} & ORIGINAL)
    assert len(users) == 1, users


def test_single_process_commands_do_not_import_chainermn():
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
                            capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '[]'

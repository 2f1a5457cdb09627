"""Every exception class defined in bms_ros derives from bms_ros.core.errors.BmsError."""
import ast
import builtins
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}


def defined_classes():
    """{class name: (path, [base names])} of every class in bms_ros (names are unique)."""
    classes = {}
    for root, _, files in os.walk(os.path.join(REPO, 'bms_ros')):
        for name in sorted(files):
            if not name.endswith('.py'):
                continue
            path = os.path.join(root, name)
            with open(path, encoding='utf-8') as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, 'id', '')
                             for b in node.bases]
                    classes[node.name] = (os.path.relpath(path, REPO), bases)
    return classes


def test_every_exception_is_a_bms_error():
    classes = defined_classes()

    def is_exception(name, seen=()):
        if name in BUILTIN_EXCEPTIONS:
            return True
        return name in classes and name not in seen and any(
            is_exception(b, (*seen, name)) for b in classes[name][1])

    def reaches_bms_error(name, seen=()):
        if name == 'BmsError':
            return True
        return name in classes and name not in seen and any(
            reaches_bms_error(b, (*seen, name)) for b in classes[name][1])

    exceptions = [name for name in classes if is_exception(name)]
    assert {'BmsError', 'ConfigError', 'SuiteNotRunning', '_ConfigChecked'} <= set(exceptions)
    outside = [f'{classes[n][0]}: {n}' for n in exceptions if not reaches_bms_error(n)]
    assert outside == [], 'exceptions outside BmsError:\n' + '\n'.join(outside)


def test_suite_not_running_is_still_a_runtime_error():
    # callers that caught RuntimeError keep working
    from bms_ros.core.errors import BmsError
    from bms_ros.tools.bmsctl.client import SuiteNotRunning
    assert issubclass(SuiteNotRunning, BmsError) and issubclass(SuiteNotRunning, RuntimeError)

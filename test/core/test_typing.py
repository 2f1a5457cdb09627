"""Type hints of bms_ros/core checked by mypy (mypy.ini at the repository root).

The typed modules are strict (every function annotated, every body checked); the modules not
yet typed are listed in mypy.ini as such and get mypy's default checks. Every core module is in
one of the two lists, so a new module is typed or listed on purpose. mypy keeps its cache in
.mypy_cache (ignored by git): a run after a small change takes a few seconds, a cold one ~20 s.
"""
import configparser
import fnmatch
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, 'mypy.ini')
STRICT = ('disallow_untyped_defs', 'disallow_incomplete_defs', 'check_untyped_defs')


def _core_modules():
    """Dotted names of every module of bms_ros/core (packages by their name)."""
    core = os.path.join(REPO, 'bms_ros', 'core')
    out = []
    for folder, dirs, files in os.walk(core):
        dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
        rel = os.path.relpath(folder, REPO).replace(os.sep, '.')
        for name in files:
            if name.endswith('.py'):
                out.append(rel if name == '__init__.py' else f'{rel}.{name[:-3]}')
    return sorted(out)


def _sections():
    """{module pattern: its option dict} of the per-module sections of mypy.ini."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    out = {}
    for section in parser.sections():
        if section.startswith('mypy-'):
            for pattern in section[len('mypy-'):].split(','):
                out[pattern.strip()] = dict(parser[section])
    return out


def _specificity(pattern, module):
    """How well ``pattern`` matches ``module`` as mypy ranks it (None: no match): a concrete
    name beats a wildcard, a longer wildcard a shorter one.
    """
    if pattern == module:
        return (2, len(pattern))
    if pattern.endswith('.*') and (module == pattern[:-2]
                                   or fnmatch.fnmatchcase(module, pattern)):
        return (1, len(pattern))
    return None


def _effective(module, sections):
    """The options of the section that applies to ``module`` (None: none does)."""
    ranked = [(_specificity(p, module), p) for p in sections]
    ranked = [(rank, p) for rank, p in ranked if rank is not None]
    return sections[max(ranked)[1]] if ranked else None


def test_every_core_module_is_typed_or_listed_as_not_yet_typed():
    sections = _sections()
    strict, lenient, unlisted = [], [], []
    for module in _core_modules():
        options = _effective(module, sections)
        if options is None or not all(k in options for k in STRICT):
            unlisted.append(module)
        elif all(options[k] == 'True' for k in STRICT):
            strict.append(module)
        elif all(options[k] == 'False' for k in STRICT):
            lenient.append(module)
        else:
            unlisted.append(module)
    assert not unlisted, (f'core modules in neither list of mypy.ini (typed, or "not yet '
                          f'typed"): {", ".join(unlisted)}')
    # the typed part does not shrink unnoticed (37 modules when this test was written)
    assert len(strict) >= 37, (len(strict), strict)


def test_mypy_finds_no_errors():
    out = subprocess.run([sys.executable, '-m', 'mypy', '--config-file', CONFIG,
                          '--no-color-output', '--no-error-summary'],
                         cwd=REPO, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, ('mypy found errors (mypy.ini; run `.venv/bin/python -m mypy` '
                                 'at the repository root):\n' + out.stdout + out.stderr)

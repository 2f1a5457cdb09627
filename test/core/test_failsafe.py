"""The fail-safe table: bounds from the shipped profiles, timing relations, docs/safety.md."""
import ast
import os
import re

import pytest
import yaml

from bms_ros.core.config import Section
from bms_ros.core.errors import ConfigError
from bms_ros.core.failsafe import ROWS, SAFE_OPEN, markdown_table, resolve
from bms_ros.core.profile import Profile, config_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILES = [os.path.join(config_dir(), 'profiles', name) for name in ('lfp_16s.yaml',
                                                                       'nmc_96s.yaml')]


def _top(path, edits=None):
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    for dotted, value in (edits or {}).items():
        node = data
        *parents, last = dotted.split('.')
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return Section(data, path)


@pytest.mark.parametrize('path', PROFILES)
def test_every_opening_row_of_the_shipped_profiles_is_bounded_by_two_seconds(path):
    rows = resolve(Profile(path).top)
    assert [r.row.row_id for r in rows] == [row.row_id for row in ROWS]
    for r in rows:
        assert r.worst_case_s == pytest.approx(sum(v for _, v in r.terms_s) + r.row.allowance_s)
        if r.row.safe_state == SAFE_OPEN:
            assert r.worst_case_s <= 2.0, r.row.row_id


def test_the_bound_reads_the_profile_values():
    rows = {r.row.row_id: r for r in resolve(_top(PROFILES[0],
                                                  {'supervisor.protection_timeout_s': 1.5}))}
    assert dict(rows['protection_lost'].terms_s) == {'supervisor.protection_timeout_s': 1.5}
    assert rows['protection_lost'].worst_case_s == pytest.approx(
        1.5 + rows['protection_lost'].row.allowance_s)


def test_a_bound_beyond_the_maximum_names_the_largest_term():
    with pytest.raises(ConfigError) as error:
        resolve(_top(PROFILES[0], {'supervisor.protection_timeout_s': 1.9}))
    text = str(error.value)
    assert 'lfp_16s.yaml: supervisor.protection_timeout_s: protection_lost' in text
    assert 'exceeds failsafe.max_time_to_safe_s 2 s' in text
    # a larger maximum admits it, a smaller one rejects the shipped values
    resolve(_top(PROFILES[0], {'supervisor.protection_timeout_s': 1.9,
                               'failsafe.max_time_to_safe_s': 3.0}))
    with pytest.raises(ConfigError, match='failsafe.max_time_to_safe_s 0.5 s'):
        resolve(_top(PROFILES[0], {'failsafe.max_time_to_safe_s': 0.5}))


@pytest.mark.parametrize('field', ['can.command_deadline_s',
                                   'simulator.contactors.command_timeout_s'])
def test_a_deadline_within_two_command_periods_is_rejected(field):
    with pytest.raises(ConfigError, match=re.escape(f'{field}: must exceed two '
                                                    'supervisor.command_period_s (0.2 s)')):
        resolve(_top(PROFILES[0], {field: 0.2}))


def test_bad_failsafe_fields_name_file_and_field():
    with pytest.raises(ConfigError, match='failsafe.max_time_to_safe_s: expected a number'):
        resolve(_top(PROFILES[0], {'failsafe.max_time_to_safe_s': 'soon'}))
    with pytest.raises(ConfigError, match='failsafe.typo_s: unknown field'):
        resolve(_top(PROFILES[0], {'failsafe.typo_s': 1.0}))
    # a mistyped or non-positive term is its owner's to reject, with the owner's message
    for value in (True, 'soon', 0.0, -1.0, float('nan')):
        rows = {r.row.row_id: r for r in resolve(_top(PROFILES[0],
                                                      {'can.command_deadline_s': value}))}
        assert dict(rows['supervisor_lost'].terms_s) == {'can.command_deadline_s': 0.5}


def _test_functions(path):
    """{function name: source of its decorators} of a test file."""
    with open(os.path.join(REPO, path), encoding='utf-8') as stream:
        source = stream.read()
    tree = ast.parse(source)
    return {node.name: ''.join(ast.get_source_segment(source, d) for d in node.decorator_list)
            for node in tree.body if isinstance(node, ast.FunctionDef)}, source


@pytest.mark.parametrize('row', ROWS, ids=lambda row: row.row_id)
def test_every_row_names_a_test_that_exists(row):
    path, _, name = row.test.partition('::')
    function, _, param = name.partition('[')
    functions, source = _test_functions(path)
    assert function in functions, f'{row.row_id}: {row.test} does not exist'
    if param:
        param = param.rstrip(']')
        assert f"'{param}'" in source, f'{row.row_id}: no case {param!r} in {path}'


def test_docs_safety_md_holds_the_table_of_the_lfp_profile():
    with open(os.path.join(REPO, 'docs', 'safety.md'), encoding='utf-8') as stream:
        doc = stream.read()
    assert markdown_table(resolve(Profile(PROFILES[0]).top)) in doc, \
        'docs/safety.md is out of date: python -m bms_ros.tools.safety_table'


def test_a_profile_with_a_bound_beyond_two_seconds_stops_every_node_at_load(tmp_path):
    """Profile() (what every node loads first) applies the table: file and field named."""
    with open(PROFILES[0], encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['pack']['cell'] = os.path.join(os.path.dirname(PROFILES[0]), data['pack']['cell'])
    data['can']['command_deadline_s'] = 1.9
    path = tmp_path / 'slow.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        Profile(path)
    assert str(error.value).startswith(f'{path}: can.command_deadline_s: supervisor_lost: '
                                       'worst-case time to open the contactors 2.20 s')

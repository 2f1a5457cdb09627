"""bms_ros.core.state_paths: one folder per namespace and serial number, the base by precedence."""
import os

import pytest
import yaml

from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import stored_state
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.state_paths import (
    check_path_part,
    default_base,
    namespace_parts,
    state_base,
    state_folder,
)

XDG = {'XDG_STATE_HOME': '/xdg', 'HOME': '/home/u'}


@pytest.mark.parametrize('namespace,parts', [
    ('/', ['_']), ('', ['_']), (None, ['_']), ('/pack_a', ['pack_a']), ('pack_b/', ['pack_b']),
    ('/robot/pack_a', ['robot', 'pack_a']),
])
def test_namespace_gives_the_folder_below_the_base(namespace, parts):
    assert namespace_parts(namespace) == parts
    assert state_folder(namespace, 'SN-1', environ=XDG) == os.path.join('/xdg/bms_ros', *parts,
                                                                         'SN-1')


def test_two_namespaces_and_two_serials_never_share_a_folder():
    folders = {state_folder(ns, serial, environ=XDG)
               for ns in ('/', '/pack_a', '/pack_b') for serial in ('SN-1', 'SN-2')}
    assert len(folders) == 6


def test_precedence_parameter_then_profile_then_xdg_then_home(tmp_path):
    parameter, profile = str(tmp_path / 'param'), str(tmp_path / 'profile')
    assert state_base(parameter, profile, XDG) == parameter
    assert state_base('', profile, XDG) == profile
    assert state_base('', '', XDG) == '/xdg/bms_ros'
    assert state_base('', '', {'HOME': '/home/u'}) == '/home/u/.local/state/bms_ros'
    # a relative XDG_STATE_HOME is invalid per the XDG spec: ignored
    assert default_base({'XDG_STATE_HOME': 'rel', 'HOME': '/home/u'}) == \
        '/home/u/.local/state/bms_ros'
    assert state_folder('/pack_a', 'SN-1', parameter, profile, XDG) == \
        os.path.join(parameter, 'pack_a', 'SN-1')


def test_relative_parameter_is_taken_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert state_base('state', '', XDG) == str(tmp_path / 'state')


def test_real_environment_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path))
    assert state_folder('/', 'SIM-LFP-0001') == str(tmp_path / 'bms_ros' / '_' / 'SIM-LFP-0001')
    assert stored_state.default_path('/', 'S') == str(tmp_path / 'bms_ros' / '_' / 'S' /
                                                      'estimator_state.json')


@pytest.mark.parametrize('serial', ['', '.', '..', 'a/b', '../x', '/abs', 'a\\b', '.hidden',
                                    ' pad', 'nul\0'])
def test_unsafe_serial_numbers_are_rejected(serial):
    with pytest.raises(ConfigError, match='serial_number'):
        state_folder('/', serial, environ=XDG)
    with pytest.raises(ConfigError, match='f.yaml: pack.serial_number'):
        check_path_part(serial, 'f.yaml', 'pack.serial_number')


def test_parameter_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(ConfigError, match='state_dir: not a folder'):
        state_base(str(blocker), '', XDG)


def test_nothing_is_created(tmp_path):
    folder = state_folder('/pack_a', 'SN-1', str(tmp_path / 'base'), environ=XDG)
    assert folder == str(tmp_path / 'base' / 'pack_a' / 'SN-1')
    assert not os.path.exists(tmp_path / 'base')


def _profile(tmp_path, **pack):
    path = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    data['pack']['cell'] = os.path.join(config_dir(), 'cells', os.path.basename(
        data['pack']['cell']))
    data['pack'].update(pack)
    target = tmp_path / 'sub' / 'p.yaml'
    target.parent.mkdir(exist_ok=True)
    target.write_text(yaml.safe_dump(data))
    return str(target)


def test_profile_state_dir_is_relative_to_the_profile_folder(tmp_path):
    pack = Profile(_profile(tmp_path, state_dir='../state')).pack
    assert pack.state_dir == str(tmp_path / 'state')
    assert Profile(_profile(tmp_path, state_dir=str(tmp_path / 'abs'))).pack.state_dir == \
        str(tmp_path / 'abs')
    assert Profile(_profile(tmp_path)).pack.state_dir == ''
    assert state_folder('/pack_a', pack.serial_number, '', pack.state_dir) == \
        str(tmp_path / 'state' / 'pack_a' / 'SIM-LFP-0001')


@pytest.mark.parametrize('pack,message', [
    ({'state_dir': ''}, 'pack.state_dir: expected a non-empty string'),
    ({'state_dir': 7}, 'pack.state_dir: expected a non-empty string'),
    ({'state_dir': 'p.yaml'}, 'pack.state_dir: not a folder'),
    ({'serial_number': '../pack_a'}, 'pack.serial_number:'),
    ({'serial_number': 'a/b'}, 'pack.serial_number:'),
])
def test_profile_rejects_bad_state_fields_naming_file_and_field(tmp_path, pack, message):
    path = _profile(tmp_path, **pack)
    with pytest.raises(ConfigError, match=message) as error:
        Profile(path)
    assert error.value.path == path

"""Bad input never crashes a core and is always counted or named (hypothesis property tests).

- random CAN frames (any id, flags, length, dlc, even non-frames) into the driver's assembler;
- NaN / inf / out-of-range values and wrong array lengths into the estimation, protection and
  balancing cores, the way their nodes feed them;
- malformed profile, cell, DBC and mapping files: a ConfigError naming the file and the field,
  never another exception.
"""
import copy
import math
import os
from types import SimpleNamespace

import can
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bms_ros.core.balancing import BalancingController
from bms_ros.core.can_bus import load_can_settings
from bms_ros.core.can_codec import REJECT_REASONS, CanProtocol, MeasurementAssembler
from bms_ros.core.can_mapping import load_dbc, load_mapping
from bms_ros.core.errors import ConfigError
from bms_ros.core.estimation import interface
from bms_ros.core.estimation.config import EstimatorConfig
from bms_ros.core.estimation.estimator import PackEstimator
from bms_ros.core.pack_model import PackModel
from bms_ros.core.pack_state_machine import load_supervisor_config
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.protection import CATALOG, Measurement, Protection, load_protection_config
from bms_ros.core.vehicle_load import VehicleConfig

from ..profile_copy import absolute_paths

CONFIG = config_dir()
PROFILES = os.path.join(CONFIG, 'profiles')
CAN_DIR = os.path.join(CONFIG, 'can')
BUSES = {'bms_ros': (os.path.join(CAN_DIR, 'bms_ros.dbc'),
                     os.path.join(CAN_DIR, 'bms_ros_mapping.yaml')),
         'alt_bms': (os.path.join(CAN_DIR, 'alt_bms.dbc'),
                     os.path.join(CAN_DIR, 'alt_bms_mapping.yaml'))}
LFP = Profile(os.path.join(PROFILES, 'lfp_16s.yaml'))
N, SENSORS = LFP.pack.cells_series, LFP.pack.temperature_sensors     # 16, 8
LIMIT_IDS = {entry.limit_id for entry in CATALOG}
# BMS_HYPOTHESIS_EXAMPLES=2000 for a deeper search than the CI's quick one
EXAMPLES = int(os.environ.get('BMS_HYPOTHESIS_EXAMPLES', '100'))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# every float a sensor or a broken message could carry
ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                      st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e9, -1e9,
                                       5.0, 3.3, 25.0]))


# ---------------------------------------------------------------------------------------------
# CAN frames into the driver's assembler


_PROTOCOLS = {name: CanProtocol.from_files(dbc, mapping, N, SENSORS)
              for name, (dbc, mapping) in BUSES.items()}


def _known_ids(name):
    proto = _PROTOCOLS[name]
    return [(m.frame_id, m.is_extended) for m in
            list(proto.measurement_messages) + list(proto.command_messages)]


def _frame(name):
    """A frame as a bus could deliver it: a known id (measurement or command) or any id,
    any flags, 0..64 data bytes, a dlc that may disagree with the data.
    """
    known = st.sampled_from(_known_ids(name))
    anything = st.tuples(st.integers(0, 0x1FFFFFFF), st.booleans()).map(
        lambda t: (t[0] & (0x1FFFFFFF if t[1] else 0x7FF), t[1]))
    return st.builds(
        lambda ident, data, dlc, err, rtr: can.Message(
            arbitration_id=ident[0], is_extended_id=ident[1], data=data,
            dlc=len(data) if dlc is None else dlc, is_error_frame=err, is_remote_frame=rtr,
            check=False),
        st.one_of(known, anything), st.binary(max_size=64),
        st.one_of(st.none(), st.integers(0, 15)), st.booleans(), st.booleans())


def _not_a_frame():
    """What a broken bus plug-in might hand over instead of a can.Message."""
    return st.sampled_from([None, b'\x01\x02', 'frame', 42, object(),
                            can.Message(arbitration_id=0x120, data=None, check=False)])


@pytest.mark.parametrize('name', sorted(BUSES))
@SETTINGS
@given(batches=st.lists(st.lists(st.one_of(_frame('bms_ros'), _frame('alt_bms'),
                                           _not_a_frame()), max_size=40), max_size=5),
       single=st.booleans())
def test_random_frames_never_raise_and_every_frame_is_accounted_for(name, batches, single):
    assembler = MeasurementAssembler(_PROTOCOLS[name])
    accepted = 0
    total = 0
    for k, batch in enumerate(batches):
        if single:    # frame by frame, as a test or a tool calls it
            accepted += sum(bool(assembler.feed(frame, float(k))) for frame in batch)
        else:         # in batches, as the driver's reader thread does
            accepted += assembler.feed_many(batch, float(k))
        total += len(batch)
    snap = assembler.snapshot(float(len(batches)), 0.5)
    # every frame is accepted, rejected (by a reason) or ignored (our own command ids)
    assert snap.frames_received == total
    assert accepted + snap.frames_rejected + assembler.frames_ignored == total
    assert snap.frames_rejected == sum(snap.counts[r] for r in REJECT_REASONS)
    # whatever came in, the measurement is well formed: valid exactly where finite
    for values, valid in ((snap.cell_voltages_v, snap.cell_voltage_valid),
                          (snap.temperatures_degc, snap.temperature_valid)):
        assert values.shape == valid.shape
        assert (np.isfinite(values) == valid).all()
    assert snap.cell_balancing.shape == (N,) and snap.cell_balancing.dtype == bool


@pytest.mark.parametrize('name', sorted(BUSES))
@SETTINGS
@given(data=st.data())
def test_random_bits_in_known_frames_give_values_within_the_dbc_range(name, data):
    """Known ids of the right length with random payloads: accepted, or rejected as a decode
    error (a multiplexer value the DBC does not define); every value that comes out is inside
    its DBC signal range (the rest is NaN and counted).
    """
    proto = _PROTOCOLS[name]
    assembler = MeasurementAssembler(proto)
    frames = []
    for mm in proto.measurement_messages:
        for _ in range(data.draw(st.integers(1, 4))):
            payload = data.draw(st.binary(min_size=mm.length, max_size=mm.length))
            frames.append(can.Message(arbitration_id=mm.frame_id, is_extended_id=mm.is_extended,
                                      data=payload, dlc=mm.length))
    accepted = assembler.feed_many(frames, 1.0)
    snap = assembler.snapshot(1.0, 0.5)
    assert accepted + snap.frames_rejected == len(frames)
    assert snap.frames_rejected == snap.counts['decode_error']
    for field in ('cell_voltages_v', 'temperatures_degc'):
        values = getattr(snap, field)
        ranges = [(s.raw_min * s.gain + s.bias, s.raw_max * s.gain + s.bias)
                  for mm in proto.measurement_messages for s in mm.signals if s.field == field]
        low = min(min(r) for r in ranges)
        high = max(max(r) for r in ranges)
        finite = values[np.isfinite(values)]
        assert ((finite >= low - 1e-6) & (finite <= high + 1e-6)).all()


# ---------------------------------------------------------------------------------------------
# measurements into the estimation, protection and balancing cores


@st.composite
def measurements(draw, cells=N, sensors=SENSORS):
    """PackMeasurement fields as plain values: mostly the right lengths, sometimes not;
    values anything from plausible to NaN, inf and absurd; flags random.
    """
    def length(n):
        return draw(st.one_of(st.just(n), st.just(n), st.integers(0, 2 * n + 1)))

    def values(n, plausible):
        return draw(st.lists(st.one_of(ANY_FLOAT, plausible), min_size=n, max_size=n))

    def flags(n):
        return draw(st.lists(st.booleans(), min_size=n, max_size=n))

    return {
        'cell_voltages_v': values(length(cells), st.floats(2.0, 4.0)),
        'cell_voltage_valid': flags(length(cells)),
        'temperatures_degc': values(length(sensors), st.floats(0.0, 60.0)),
        'temperature_valid': flags(length(sensors)),
        'pack_current_a': draw(st.one_of(ANY_FLOAT, st.floats(-100.0, 100.0))),
        'pack_voltage_v': draw(st.one_of(ANY_FLOAT, st.floats(40.0, 60.0))),
        'cell_voltages_stale': draw(st.booleans()),
        'temperatures_stale': draw(st.booleans()),
        'current_stale': draw(st.booleans()),
        'cell_balancing': flags(length(cells)),
        'negative_contactor_closed': draw(st.booleans()),
        'positive_contactor_closed': draw(st.booleans()),
        'contactors_stale': draw(st.booleans()),
    }


def _lengths_ok(m, cells=N, sensors=SENSORS):
    return (len(m['cell_voltages_v']) == len(m['cell_voltage_valid']) == cells
            and len(m['temperatures_degc']) == len(m['temperature_valid']) == sensors)


def _estimator_step(estimator, config, m, t_s, last_t_s):
    """What the state_estimator node does with one PackMeasurement (the same core calls);
    the reject reason or None.
    """
    msg = SimpleNamespace(**m)
    reason = interface.measurement_reject_reason(msg, N, SENSORS, t_s, last_t_s, 0.0,
                                                 config.measurement_timeout_s)
    if reason is None:
        interface.step_from_measurement(estimator, msg, t_s, last_t_s, LFP.pack.sensor_of_cell(),
                                        config.bleed_resistance_ohm)
    return reason


@SETTINGS
@given(stream=st.lists(measurements(), min_size=1, max_size=12))
def test_estimation_rejects_and_counts_bad_measurements_and_stays_bounded(stream):
    config = EstimatorConfig.from_section(LFP.section('estimator'))
    estimator = PackEstimator(LFP.pack.cell, N, config)
    last_t_s = None
    known = np.zeros(N, dtype=bool)   # cells with a SoC: absurd input must not lose it
    with np.errstate(all='ignore'):   # numpy warnings are no failure; exceptions are
        for k, m in enumerate(stream):
            reason = _estimator_step(estimator, config, m, 0.1 * (k + 1), last_t_s)
            if reason is None:
                last_t_s = 0.1 * (k + 1)
            if not _lengths_ok(m) or not math.isfinite(m['pack_current_a']) \
                    or m['current_stale']:
                assert reason is not None   # malformed: refused with a reason
            est = estimator.estimate()
            assert np.isfinite(est.cell_soc[known]).all(), (known, est.cell_soc)
            known |= np.isfinite(est.cell_soc)
            soc = est.cell_soc[known]
            assert ((soc >= 0.0) & (soc <= 1.0)).all()
            assert math.isnan(est.pack_soc) or 0.0 <= est.pack_soc <= 1.0
            for limit in (est.charge_current_limit_a, est.discharge_current_limit_a):
                assert math.isfinite(limit) and limit >= 0.0


def _measurement(m):
    return Measurement(
        cell_voltages_v=np.asarray(m['cell_voltages_v'], dtype=float),
        cell_voltage_valid=np.asarray(m['cell_voltage_valid'], dtype=bool),
        temperatures_degc=np.asarray(m['temperatures_degc'], dtype=float),
        temperature_valid=np.asarray(m['temperature_valid'], dtype=bool),
        pack_current_a=float(m['pack_current_a']), pack_voltage_v=float(m['pack_voltage_v']),
        cell_voltages_stale=m['cell_voltages_stale'], temperatures_stale=m['temperatures_stale'],
        current_stale=m['current_stale'])


@SETTINGS
@given(stream=st.lists(measurements(), min_size=1, max_size=12))
def test_protection_counts_malformed_measurements_and_reports_well_formed_events(stream):
    protection = Protection(load_protection_config(LFP.section('protection'), LFP.pack), N,
                            SENSORS)
    malformed = 0
    with np.errstate(all='ignore'):
        for k, m in enumerate(stream):
            events = protection.evaluate(_measurement(m), 0.1 * (k + 1))
            malformed += not _lengths_ok(m)
            if not _lengths_ok(m):
                assert events == []
            for event in events:
                assert event.limit_id in LIMIT_IDS and event.message
            status = protection.status(0.1 * (k + 1))
            assert status.measurements_rejected == malformed
            assert status.charge_current_limit_a >= 0.0
            assert status.discharge_current_limit_a >= 0.0
        protection.check_timeout(0.1 * len(stream) + 5.0)


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf, 9.0, -2.0])
def test_protection_trips_on_a_bad_value_flagged_valid(bad):
    """A value no cell can have, flagged valid, is not trusted: after its debounce it latches
    the invalid or out-of-range trip of that cell (that cell is unprotected).
    """
    config = load_protection_config(LFP.section('protection'), LFP.pack)
    protection = Protection(config, N, SENSORS)
    cells = [3.3] * N
    cells[7] = bad
    m = Measurement.simple(cells, [25.0] * SENSORS, pack_voltage_v=3.3 * N)
    events = []
    t = 0.0
    for _ in range(130):              # 13 s: past the 10 s start-up grace and the debounce
        t += 0.1
        events += protection.evaluate(m, t)
    expected = 'cell_voltage_invalid' if not math.isfinite(bad) else 'cell_voltage_out_of_range'
    trips = [e for e in events if e.active and e.latched]
    assert [(e.limit_id, e.index) for e in trips if e.limit_id == expected] == [(expected, 7)]
    assert protection.status(t).trip_latched


@SETTINGS
@given(stream=st.lists(measurements(), min_size=1, max_size=12),
       stamps=st.lists(st.one_of(st.floats(0.0, 100.0), ANY_FLOAT), min_size=12,
                       max_size=12))
def test_balancing_rejects_and_counts_bad_measurements_and_never_bleeds_on_them(stream,
                                                                                stamps):
    controller = BalancingController.from_profile(LFP)
    controller.set_mode(1)            # voltage mode: bleeds on measurements alone
    controller.set_protection(False, 0.0)
    rejected = 0
    with np.errstate(all='ignore'):
        for k, m in enumerate(stream):
            ok = controller.set_measurement(m, stamps[k])
            rejected += not ok
            # (balancing takes absent validity flags as "valid where finite")
            flags_ok = all(len(m[f]) in (0, n) for f, n in (('cell_voltage_valid', N),
                                                            ('temperature_valid', SENSORS)))
            if not (len(m['cell_voltages_v']) == N and len(m['temperatures_degc']) == SENSORS
                    and flags_ok):
                assert not ok
            result = controller.update(0.1 * (k + 1))
            assert result.cell_bleed.shape == (N,) and result.cell_bleed.dtype == bool
            if not ok:                # held off while the stream is rejected
                assert not result.cell_bleed.any() and result.inhibit_reason
    assert controller.measurements_rejected == rejected


# ---------------------------------------------------------------------------------------------
# malformed configuration files


def _load_like_the_nodes(path):
    """Everything the nodes validate at start-up, in their order."""
    profile = Profile(path)
    PackModel.from_profile(profile)                                # pack_simulator
    settings_ = load_can_settings(profile)                         # can_driver
    CanProtocol.from_files(settings_.dbc_path, settings_.mapping_path,
                           profile.pack.cells_series, profile.pack.temperature_sensors)
    EstimatorConfig.from_section(profile.section('estimator'))     # state_estimator
    load_protection_config(profile.section('protection'), profile.pack)
    load_supervisor_config(profile.section('supervisor'))          # pack_supervisor
    BalancingController.from_profile(profile)                      # balancing
    VehicleConfig.from_section(profile.section('gazebo'), profile.pack)   # gazebo_load


def _leaves(node, path=()):
    """Paths of every scalar (and list) leaf of a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    else:
        yield path


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


BAD_VALUES = st.one_of(
    st.sampled_from([None, '', 'abc', -1, 0, -1e9, 1e12, True, [], [1, 'x'], {}, {'x': 1},
                     '.nan', float('nan'), float('inf'), '../nowhere.yaml']),
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8))


@pytest.mark.parametrize('base', ['lfp_16s.yaml', 'nmc_96s.yaml'])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_broken_profile_value_is_a_config_error_naming_the_file_and_a_field(base, data,
                                                                             tmp_path_factory):
    with open(os.path.join(PROFILES, base), encoding='utf-8') as stream:
        good = absolute_paths(yaml.safe_load(stream), PROFILES)
    leaves = sorted(_leaves(good))
    where = data.draw(st.sampled_from(leaves), label='field')
    value = data.draw(BAD_VALUES, label='value')
    broken = copy.deepcopy(good)
    _set(broken, where, value)
    path = tmp_path_factory.mktemp('profile') / 'broken.yaml'
    path.write_text(yaml.safe_dump(broken))
    try:
        _load_like_the_nodes(str(path))
    except ConfigError as error:
        # named: the profile (or the file the broken field points to) and a dotted field
        assert str(error).startswith(error.path + ': ')
        if error.path == str(path):
            assert error.field.split('.')[0].split('[')[0] in good, str(error)
            assert error.field, str(error)
        else:   # a path field pointing at a file that is not what it should be
            assert where[-1] in ('cell', 'dbc', 'mapping', 'file'), (where, str(error))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_broken_cell_file_is_a_config_error_naming_it(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp('cell')
    cell_path = os.path.join(CONFIG, 'cells', 'lfp_a123_anr26650.yaml')
    with open(cell_path, encoding='utf-8') as stream:
        cell = absolute_paths(yaml.safe_load(stream), os.path.join(CONFIG, 'cells'))
    for key, value in cell.items():   # the OCV table is named relative to the cell file
        if isinstance(value, str) and not os.path.isabs(value) and value.endswith('.csv'):
            cell[key] = os.path.join(CONFIG, 'cells', value)
    where = data.draw(st.sampled_from(sorted(_leaves(cell))), label='field')
    _set(cell, where, data.draw(BAD_VALUES, label='value'))
    broken_cell = folder / 'cell.yaml'
    broken_cell.write_text(yaml.safe_dump(cell))
    with open(os.path.join(PROFILES, 'lfp_16s.yaml'), encoding='utf-8') as stream:
        profile = absolute_paths(yaml.safe_load(stream), PROFILES)
    profile['pack']['cell'] = str(broken_cell)
    profile_path = folder / 'profile.yaml'
    profile_path.write_text(yaml.safe_dump(profile))
    try:
        _load_like_the_nodes(str(profile_path))
    except ConfigError as error:
        assert error.path in (str(broken_cell), str(profile_path)) or \
            error.path.endswith('.csv'), str(error)
        assert str(error).startswith(error.path + ': ')


@pytest.mark.parametrize('name', sorted(BUSES))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_broken_mapping_is_a_config_error_naming_the_file_and_field(name, data,
                                                                     tmp_path_factory):
    dbc, mapping_path = BUSES[name]
    with open(mapping_path, encoding='utf-8') as stream:
        mapping = yaml.safe_load(stream)
    where = data.draw(st.sampled_from(sorted(_mapping_leaves(mapping))), label='field')
    value = data.draw(BAD_VALUES, label='value')
    _set(mapping, where, value)
    path = tmp_path_factory.mktemp('mapping') / 'mapping.yaml'
    path.write_text(yaml.safe_dump(mapping))
    try:
        load_mapping(str(path), dbc, N, SENSORS)
    except ConfigError as error:
        assert error.path == str(path) and error.field, str(error)
        assert error.field.split('.')[0].split('[')[0] in ('measurement', 'commands'), str(error)


def _mapping_leaves(node, path=()):
    """Leaf paths of a mapping, through its lists of messages and signals too."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _mapping_leaves(value, path + (key,))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, value in enumerate(node):
            yield from _mapping_leaves(value, path + (i,))
    else:
        yield path


@pytest.mark.parametrize('name', sorted(BUSES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.floats(0.05, 0.95), garbage=st.binary(min_size=1, max_size=40))
def test_a_damaged_dbc_is_a_config_error_naming_it(name, cut, garbage, tmp_path_factory):
    dbc, mapping = BUSES[name]
    with open(dbc, 'rb') as stream:
        text = stream.read()
    path = tmp_path_factory.mktemp('dbc') / 'damaged.dbc'
    path.write_bytes(text[:int(cut * len(text))] + garbage)
    try:
        database = load_dbc(str(path))
        load_mapping(mapping, str(path), N, SENSORS, database=database)
    except ConfigError as error:
        assert error.path in (str(path), mapping), str(error)
        assert str(error).startswith(error.path + ': ')


@pytest.mark.parametrize('text, field', [
    ('pack: [1, 2\n', ''),                          # YAML syntax: file and line
    ('- just\n- a list\n', ''),
    ('pack: {name: x}\nprotecton: {}\n', 'protecton'),   # a typo of a section
])
def test_malformed_profile_text_is_a_config_error(tmp_path, text, field):
    path = tmp_path / 'profile.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Profile(str(path))
    assert info.value.path == str(path) and info.value.field == field
    if 'just' not in text and field == '':
        assert 'line 1' in str(info.value)


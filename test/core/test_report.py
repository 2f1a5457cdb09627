"""bms-report: the data it plots equals the bag's, and the PNGs show it where it should be.

The PNGs are read back with matplotlib.image.imread; a series' data points are mapped to pixels
with the axes' limits and pixel box, and the series' colour must be found there (and not where
the data is not).
"""
import os

import numpy as np
import pytest
from matplotlib.image import imread
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from bms_ros.core import bag_schema
from bms_ros.core.estimation.estimator import pack_soc
from bms_ros.tools import report
from bms_ros.tools.bag.bagio import BagWriter, new_message, time_message

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'fixtures',
                       'bags', 'lfp_thermal_event')
T0 = 1_700_000_000.0


def read_independently(bag_dir, topic):
    """Decoded messages of ``topic`` with the mcap/mcap_ros2 packages, in log-time order."""
    name = os.path.basename(os.path.normpath(bag_dir))
    with open(os.path.join(bag_dir, f'{name}.mcap'), 'rb') as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        return [msg for _, _, _, msg in reader.iter_decoded_messages(topics=[topic])]


def rgb(hex_colour):
    return np.array([int(hex_colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5)])


def colour_mask(image, hex_colour, tolerance=0.06):
    return np.all(np.abs(image[:, :, :3] - rgb(hex_colour)) <= tolerance, axis=2)


def to_pixel(info, x, y):
    """Pixel (column, row) of data point (x, y) in a panel rendered by report.render."""
    x0, y0, x1, y1 = info['axes_px']
    (xmin, xmax), (ymin, ymax) = info['xlim'], info['ylim']
    col = x0 + (x - xmin) / (xmax - xmin) * (x1 - x0)
    row = y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)
    return int(round(col)), int(round(row))


def found_near(mask, col, row, radius=2):
    return mask[max(row - radius, 0):row + radius + 1, max(col - radius, 0):col + radius + 1].any()


def fraction_on_line(info, mask, x, y, samples=40):
    """Fraction of ``samples`` data points (evenly picked) with the colour at their pixel."""
    picks = np.linspace(0, len(x) - 1, samples).astype(int)
    hits = [found_near(mask, *to_pixel(info, x[k], y[k])) for k in picks]
    return float(np.mean(hits))


# ----------------------------------------------------------------------------- data

def test_report_data_equals_the_bag_values():
    data = report.report_data(FIXTURE)
    meas = read_independently(FIXTURE, '/measurement')
    truth = read_independently(FIXTURE, '/sim_truth')
    assert len(data.measurement_t_s) == len(meas) == 601
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in meas])
    # times from the bag's start (first receive time, 2 ms after the first stamp)
    assert data.measurement_t_s == pytest.approx(stamps - stamps[0] - 0.002, abs=1e-6)
    assert np.array_equal(data.pack_current_a, [m.pack_current_a for m in meas])
    assert np.array_equal(data.pack_voltage_v, [m.pack_voltage_v for m in meas])
    cells = np.array([m.cell_voltages_v for m in meas], dtype=float)
    assert np.array_equal(data.cell_voltage_min_v, cells.min(axis=1))
    assert np.array_equal(data.cell_voltage_max_v, cells.max(axis=1))
    assert data.cell_voltage_mean_v == pytest.approx(cells.mean(axis=1), abs=1e-12)
    temps = np.array([m.temperatures_degc for m in meas], dtype=float)
    assert np.array_equal(data.temperature_max_degc, temps.max(axis=1))
    assert np.array_equal(data.temperature_min_degc, temps.min(axis=1))
    assert data.truth_soc == pytest.approx(
        [pack_soc(m.cell_soc, m.cell_capacity_ah)[0] for m in truth], abs=1e-12)
    assert data.soc_source == '' and len(data.soc) == 0 and data.events == []


def synthetic_bag(path):
    """10 s: measurements 10 Hz, estimate and truth 1 Hz, a warning 2..4 s and a trip at 6 s."""
    topics = {name: bag_schema.resolve('', name) for name in
              ('measurement', 'estimate', 'sim_truth', 'trip_event')}
    with BagWriter(path, {'bms_ros.namespace': ''}) as writer:
        for name, topic in topics.items():
            writer.add_topic(topic, bag_schema.TOPICS[name].msgtype,
                             [bag_schema.qos_fields(bag_schema.TOPICS[name].kind, 10)])

        def put(name, t, **fields):
            header = new_message('std_msgs/msg/Header', stamp=time_message(T0 + t))
            msgtype = bag_schema.TOPICS[name].msgtype
            writer.write_message(topics[name], int(round((T0 + t) * 1e9)),
                                 new_message(msgtype, header=header, **fields), msgtype)

        for k in range(101):
            t = 0.1 * k
            put('measurement', t, pack_current_a=-20.0 if t < 5.0 else 10.0,
                pack_voltage_v=50.0 + 0.2 * t,
                cell_voltages_v=[3.2 + 0.01 * t, 3.25, 3.3], cell_voltage_valid=[True] * 3,
                temperatures_degc=[25.0 + t, 20.0], temperature_valid=[True, True])
        for k in range(11):
            put('estimate', float(k), pack_soc=0.8 - 0.01 * k)
            put('sim_truth', float(k), cell_soc=[0.75 - 0.01 * k] * 3,
                cell_capacity_ah=[2.3] * 3)
        put('trip_event', 2.0, limit_id='cell_overvoltage', level=1, index=2, active=True)
        put('trip_event', 4.0, limit_id='cell_overvoltage', level=1, index=2, active=False)
        put('trip_event', 6.0, limit_id='discharge_overtemperature', level=3, index=0,
            active=True, latched=True, value=56.0, threshold=55.0, unit='degC')
    return path


def test_events_pair_into_intervals(tmp_path):
    data = report.report_data(synthetic_bag(tmp_path / 'syn'))
    assert [(e.limit_id, e.level, e.index, e.cleared) for e in data.events] == \
        [('cell_overvoltage', 1, 2, True), ('discharge_overtemperature', 3, 0, False)]
    # start and end (still active: the end of the bag) in s since the bag's start
    assert [(e.start_s, e.end_s) for e in data.events] == [
        (pytest.approx(2.0, abs=1e-6), pytest.approx(4.0, abs=1e-6)),
        (pytest.approx(6.0, abs=1e-6), pytest.approx(10.0, abs=1e-6))]
    assert data.soc_source == 'estimate'
    assert np.allclose(data.soc, 0.8 - 0.01 * np.arange(11), atol=1e-7)
    assert np.allclose(data.truth_soc, 0.75 - 0.01 * np.arange(11), atol=1e-7)
    lines = report.summary_lines(data)
    assert 'trip discharge_overtemperature[0] at 6.00 s, still active' in lines


# ----------------------------------------------------------------------------- pixels

@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp('report')
    bag = synthetic_bag(out / 'syn')
    data = report.report_data(bag)
    return data, report.render(data, str(out / 'png'))


def test_every_panel_and_the_overview_is_written(rendered):
    _, result = rendered
    assert set(result) == set(report.PANELS) | {'overview'}
    for info in result.values():
        image = imread(info['path'])
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400


@pytest.mark.parametrize('panel,series,field,scale', [
    ('current', 'current', 'pack_current_a', 1.0),
    ('voltage', 'voltage', 'pack_voltage_v', 1.0),
    ('soc', 'soc_estimate', 'soc', 100.0),
    ('soc', 'soc_truth', 'truth_soc', 100.0),
    ('cell_voltages', 'cell_max', 'cell_voltage_max_v', 1.0),
    ('cell_voltages', 'cell_min', 'cell_voltage_min_v', 1.0),
    ('temperatures', 'temperature_max', 'temperature_max_degc', 1.0),
])
def test_lines_are_drawn_at_the_data(rendered, panel, series, field, scale):
    data, result = rendered
    info = result[panel]
    x, y = info['series'][series]
    times = data.soc_t_s if series == 'soc_estimate' else (
        data.truth_t_s if series == 'soc_truth' else data.measurement_t_s)
    # the returned figure data is the bag's data
    assert np.array_equal(x, times) and np.allclose(y, scale * getattr(data, field))
    image = imread(info['path'])
    mask = colour_mask(image, report.COLORS[series])
    x0, y0, x1, y1 = info['axes_px']
    assert mask[y0:y1 + 1, x0:x1 + 1].sum() > 50
    outside = mask.copy()
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert outside.sum() == 0            # the series' colour appears only inside the axes
    assert fraction_on_line(info, mask, x, y) >= 0.9


def test_current_line_is_not_where_the_data_is_not(rendered):
    data, result = rendered
    info = result['current']
    mask = colour_mask(imread(info['path']), report.COLORS['current'])
    # at t = 2 s the current is -20 A: nothing blue at +10 A, plenty at -20 A
    assert found_near(mask, *to_pixel(info, 2.0, -20.0))
    assert not found_near(mask, *to_pixel(info, 2.0, 10.0), radius=3)
    assert found_near(mask, *to_pixel(info, 8.0, 10.0))
    assert not found_near(mask, *to_pixel(info, 8.0, -20.0), radius=3)


def test_trips_timeline_shows_bars_from_raise_to_clear(rendered):
    data, result = rendered
    info = result['trips']
    image = imread(info['path'])
    rows = report.event_rows(data.events)
    trip_row = rows.index(('discharge_overtemperature', 0, 3))
    warn_row = rows.index(('cell_overvoltage', 2, 1))
    trip = colour_mask(image, report.COLORS['trip'])
    warning = colour_mask(image, report.COLORS['warning'])
    # trip bar from 6 s to the end of the bag (still latched), none before 6 s
    assert all(found_near(trip, *to_pixel(info, t, trip_row), radius=1) for t in (6.3, 8, 9.7))
    assert not any(found_near(trip, *to_pixel(info, t, trip_row), radius=1) for t in (1, 3, 5.5))
    # warning bar from 2 to 4 s only
    assert all(found_near(warning, *to_pixel(info, t, warn_row), radius=1) for t in (2.3, 3, 3.7))
    assert not any(found_near(warning, *to_pixel(info, t, warn_row), radius=1)
                   for t in (1.0, 5.0, 8.0))


def test_cli(tmp_path, capsys):
    out = tmp_path / 'png'
    assert report.main([FIXTURE, '--out', str(out)]) == 0
    assert sorted(os.listdir(out)) == sorted(f'{p}.png' for p in (*report.PANELS, 'overview'))
    assert 'bag ' in capsys.readouterr().out
    assert report.main([str(tmp_path / 'missing')]) == 2
    assert 'no such bag' in capsys.readouterr().err


# ----------------------------------------------------------------------------- issue 18 item 5

def busy_bag(path):
    """12 s: a trip latched 5 s before the bag started (transient-local history), an alarm
    raised and cleared before it (not drawn), warning + alarm + trip of one sensor raised at the
    same instant (6 s), the pack state STANDBY -> PRECHARGE -> DRIVE -> ERROR and the contactor
    feedback closed from 3.5 s until the trip opened them.
    """
    names = ('measurement', 'trip_event', 'pack_state')
    topics = {name: bag_schema.resolve('', name) for name in names}
    with BagWriter(path, {'bms_ros.namespace': ''}) as writer:
        for name, topic in topics.items():
            writer.add_topic(topic, bag_schema.TOPICS[name].msgtype,
                             [bag_schema.qos_fields(bag_schema.TOPICS[name].kind, 10)])

        def put(name, t, stamp_t=None, **fields):
            header = new_message('std_msgs/msg/Header',
                                 stamp=time_message(T0 + (t if stamp_t is None else stamp_t)))
            msgtype = bag_schema.TOPICS[name].msgtype
            writer.write_message(topics[name], int(round((T0 + t) * 1e9)),
                                 new_message(msgtype, header=header, **fields), msgtype)

        # the recorder receives the latched history first, stamped when it was raised
        put('trip_event', 0.0, stamp_t=-5.0, limit_id='cell_undervoltage', level=3, index=1,
            active=True, latched=True)
        put('trip_event', 0.0, stamp_t=-9.0, limit_id='temperature_spread', level=2, index=-1,
            active=True)
        put('trip_event', 0.0, stamp_t=-8.0, limit_id='temperature_spread', level=2, index=-1,
            active=False)
        for k in range(121):
            t = 0.1 * k
            closed = 3.5 <= t < 6.05
            put('measurement', t, pack_current_a=-10.0 if closed else 0.0, pack_voltage_v=52.0,
                cell_voltages_v=[3.25, 3.26, 3.27], cell_voltage_valid=[True] * 3,
                temperatures_degc=[30.0 + t, 25.0], temperature_valid=[True, True],
                negative_contactor_closed=closed, positive_contactor_closed=closed,
                precharge_relay_closed=3.0 <= t < 3.5)
        for t, state in ((0.05, 1), (3.0, 2), (3.5, 3), (6.05, 5)):
            put('pack_state', t, state=state)
        for level in (1, 2, 3):
            put('trip_event', 6.0, limit_id='discharge_overtemperature', level=level, index=0,
                active=True, latched=level == 3, value=56.0, threshold=55.0, unit='degC')
        put('trip_event', 9.0, limit_id='discharge_overtemperature', level=1, index=0,
            active=False)
    return path


@pytest.fixture(scope='module')
def busy(tmp_path_factory):
    from bms_ros.core.profile import default_profile_path
    out = tmp_path_factory.mktemp('busy')
    data = report.report_data(busy_bag(out / 'busy'), profile=default_profile_path())
    return data, report.render(data, str(out / 'png'))


def test_each_level_has_its_own_row_and_nothing_paints_over_a_trip(busy):
    data, result = busy
    rows = report.event_rows(data.events)
    assert rows == [('cell_undervoltage', 1, 3), ('discharge_overtemperature', 0, 1),
                    ('discharge_overtemperature', 0, 2), ('discharge_overtemperature', 0, 3)]
    info = result['trips']
    image = imread(info['path'])
    for level, name in ((1, 'warning'), (2, 'alarm'), (3, 'trip')):
        row = rows.index(('discharge_overtemperature', 0, level))
        mask = colour_mask(image, report.COLORS[name])
        # each level's bar starts at 6 s on its own row ...
        assert found_near(mask, *to_pixel(info, 6.3, row), radius=1), name
        assert not found_near(mask, *to_pixel(info, 5.5, row), radius=1), name
        # ... and no other level's colour is on that row
        for other in {'warning', 'alarm', 'trip'} - {name}:
            other_mask = colour_mask(image, report.COLORS[other])
            assert not found_near(other_mask, *to_pixel(info, 7.0, row), radius=1), (name, other)
    warning = colour_mask(image, report.COLORS['warning'])
    warn_row = rows.index(('discharge_overtemperature', 0, 1))
    assert not found_near(warning, *to_pixel(info, 10.0, warn_row), radius=1)   # cleared at 9 s


def test_a_trip_latched_before_the_bag_is_drawn_from_its_start(busy):
    data, result = busy
    early = next(e for e in data.events if e.limit_id == 'cell_undervoltage')
    assert (early.start_s, early.end_s, early.before_start) == (0.0, pytest.approx(12.0), True)
    assert not any(e.limit_id == 'temperature_spread' for e in data.events)   # over before 0
    info = result['trips']
    trip = colour_mask(imread(info['path']), report.COLORS['trip'])
    row = report.event_rows(data.events).index(('cell_undervoltage', 1, 3))
    assert all(found_near(trip, *to_pixel(info, t, row), radius=1) for t in (0.2, 6.0, 11.8))
    assert 'trip cell_undervoltage[1] before the bag started, still active' in \
        report.summary_lines(data)


def test_pack_state_and_contactor_panel(busy):
    data, result = busy
    assert np.allclose(data.state_t_s, [0.05, 3.0, 3.5, 6.05], atol=1e-6)
    assert list(data.state) == [1, 2, 3, 5]
    info = result['pack_state']
    x, y = info['series']['state']
    assert list(y) == [1, 2, 3, 5, 5] and x[-1] == pytest.approx(data.end_s)
    image = imread(info['path'])
    state = colour_mask(image, report.COLORS['state'])
    assert found_near(state, *to_pixel(info, 4.5, 3))          # DRIVE at 4.5 s
    assert not found_near(state, *to_pixel(info, 4.5, 1), radius=1)
    assert found_near(state, *to_pixel(info, 9.0, 5))          # ERROR after the trip
    for k, name in enumerate(report.CONTACTORS):
        mask = colour_mask(image, report.COLORS[name])
        row = -1.0 - k
        on = (3.2,) if name == 'precharge' else (3.8, 5.0, 5.9)
        off = (1.0, 4.5, 8.0) if name == 'precharge' else (1.0, 2.5, 7.0, 11.0)
        assert all(found_near(mask, *to_pixel(info, t, row), radius=1) for t in on), name
        assert not any(found_near(mask, *to_pixel(info, t, row), radius=1) for t in off), name


@pytest.mark.parametrize('panel, limit_id, values', [
    ('cell_voltages', 'cell_overvoltage', (3.62,)),          # the warning stays in view
    ('cell_voltages', 'cell_undervoltage', (2.5,)),
    ('temperatures', 'discharge_overtemperature', (45.0,)),
    ('temperatures', 'discharge_undertemperature', (-20.0,)),
    ('voltage', 'pack_overvoltage', (57.9,)),
])
def test_limit_lines_at_the_profile_levels(busy, panel, limit_id, values):
    """Every level is drawn; the y range holds the data and each limit's warning, so the
    alarm and trip lines beyond it may lie outside the view.
    """
    data, result = busy
    info = result[panel]
    drawn = {(lid, level): value for lid, level, value in info['series']['limits']}
    expected = {(lid, level): value for lid, level, value in data.limits[panel]}
    assert drawn == expected
    image = imread(info['path'])
    levels = {3.62: 1, 2.5: 1, 45.0: 1, -20.0: 1, 57.9: 1}
    for value in values:
        level = levels[value]
        assert drawn[(limit_id, level)] == pytest.approx(value)
        mask = colour_mask(image, report.COLORS[report.LEVEL_NAMES[level]])
        hits = [found_near(mask, *to_pixel(info, t, value), radius=1) for t in (1.0, 4.0, 11.0)]
        assert sum(hits) >= 2, (limit_id, value)     # dashed: most probes hit a dash

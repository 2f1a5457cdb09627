"""Recorded CAN logs (bms_ros.core.can_log, bms_ros.tools.can_log): logs written with
python-can's own writers from frames PackEncoder encodes from a known state, decoded back
within quantisation; bad records counted; playback onto python-can's virtual bus.
"""
import csv
import math
import os
import threading

import can
import numpy as np
import pytest

from bms_ros.core.can_bus import BusConfig, CanBus, load_can_settings
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.can_log import LogDecoder, ReadStats, play, read_log
from bms_ros.core.profile import Profile, config_dir
from bms_ros.tools import can_log as tool

PROFILE = os.path.join(config_dir(), 'profiles', 'lfp_16s.yaml')
T0_S = 1_735_689_600.0          # log time of the first frame (candump stamps are epoch s)
STEP_S = 0.01
DURATION_S = 1.0


@pytest.fixture(scope='module')
def protocol():
    profile = Profile(PROFILE)
    settings = load_can_settings(profile)
    return CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                  profile.pack.cells_series, profile.pack.temperature_sensors)


def known_state(protocol):
    cells, sensors = protocol.cells_series, protocol.temperature_sensors
    return {'cell_voltages_v': 3.2 + 0.0137 * np.arange(cells),
            'temperatures_degc': 21.0 + 1.33 * np.arange(sensors),
            'pack_current_a': -12.345, 'pack_voltage_v': 52.61, 'link_voltage_v': 52.07,
            'negative_contactor_closed': True, 'positive_contactor_closed': True,
            'precharge_relay_closed': False,
            'cell_balancing': np.arange(cells) % 3 == 0}


def encoded_frames(protocol, duration_s=DURATION_S, t0_s=T0_S, encoder=None):
    """Frames the pack simulator's encoder sends over ``duration_s``, stamped with log time."""
    encoder = encoder or PackEncoder(protocol)
    state = known_state(protocol)
    frames = []
    for k in range(int(round(duration_s / STEP_S))):
        now = t0_s + k * STEP_S
        for msg in encoder.due_frames(now, state):
            msg.timestamp = now
            msg.channel = 'can0'
            frames.append(msg)
    return frames


def write_log(path, frames):
    with can.Logger(str(path)) as logger:       # python-can's writer, chosen by suffix
        for msg in frames:
            logger.on_message_received(msg)
    return path


def read_csv(path):
    with open(path, newline='', encoding='utf-8') as stream:
        return list(csv.DictReader(stream))


def check_rows(rows, protocol):
    state = known_state(protocol)
    assert len(rows) >= 9
    for row in rows:
        cells = [float(row[f'cell_voltages_v_{i}']) for i in range(protocol.cells_series)]
        temps = [float(row[f'temperatures_degc_{i}'])
                 for i in range(protocol.temperature_sensors)]
        np.testing.assert_allclose(cells, state['cell_voltages_v'], atol=0.0005 + 1e-6)
        np.testing.assert_allclose(temps, state['temperatures_degc'], atol=0.05 + 1e-6)
        assert float(row['pack_current_a']) == pytest.approx(-12.345, abs=0.0005 + 1e-6)
        assert float(row['pack_voltage_v']) == pytest.approx(52.61, abs=0.005 + 1e-6)
        assert float(row['link_voltage_v']) == pytest.approx(52.07, abs=0.005 + 1e-6)
        assert [row[f'{g}_stale'] for g in ('cell_voltages', 'temperatures', 'current',
                                            'contactors')] == ['0', '0', '0', '0']


@pytest.mark.parametrize('suffix', ['.log', '.asc'])
def test_decode_to_csv_gives_the_state(tmp_path, protocol, suffix, capsys):
    log_path = write_log(tmp_path / f'pack{suffix}', encoded_frames(protocol))
    out = tmp_path / 'decoded.csv'
    assert tool.main(['decode', str(log_path), '--profile', PROFILE, '--out', str(out)]) == 0
    rows = read_csv(out)
    check_rows(rows, protocol)
    times = np.array([float(r['t_s']) for r in rows])
    # one snapshot every 1/publish_rate_hz (10 Hz) of log time, from one period after the first
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-6)
    assert len(rows) == 10
    text = capsys.readouterr().out
    assert 'frames_rejected 0' in text and 'unmapped_branch 0' in text
    assert 'counter_jump 0' in text and 'counter_repeat 0' in text


def test_decode_to_mcap_bag(tmp_path, protocol):
    from bms_ros.tools.bag.bagio import Bag
    log_path = write_log(tmp_path / 'pack.log', encoded_frames(protocol))
    assert tool.main(['decode', str(log_path), '--profile', PROFILE,
                      '--out', str(tmp_path / 'decoded.mcap')]) == 0
    state = known_state(protocol)
    with Bag(tmp_path / 'decoded') as bag:
        messages = bag.read('measurement')
    assert len(messages) == 10
    for k, (t_ns, msg) in enumerate(messages):
        t_s = T0_S + 0.1 * (k + 1)
        assert t_ns == round(t_s * 1e9)                     # bag stamp = log time
        assert msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 == pytest.approx(
            t_s, abs=1e-6)
        np.testing.assert_allclose(msg.cell_voltages_v, state['cell_voltages_v'], atol=6e-4)
        np.testing.assert_allclose(msg.temperatures_degc, state['temperatures_degc'], atol=0.06)
        assert msg.cell_voltage_valid.all() and msg.temperature_valid.all()
        assert msg.pack_current_a == pytest.approx(-12.345, abs=1e-3)
        assert list(msg.cell_balancing) == list(state['cell_balancing'])
        assert (msg.negative_contactor_closed, msg.positive_contactor_closed,
                msg.precharge_relay_closed) == (True, True, False)
        assert not (msg.cell_voltages_stale or msg.temperatures_stale or msg.current_stale
                    or msg.contactors_stale)


def test_stale_timeout_runs_on_log_time(protocol):
    # frames for 1 s, then only the current frame: the cells go stale stale_timeout_s (0.5 s)
    # after their last frame, in log time (the decode itself takes milliseconds)
    frames = encoded_frames(protocol)
    current_id = next(m.frame_id for m in protocol.mapping.measurement
                      if m.name == 'Pack_CurrentVoltage')
    later = [f for f in encoded_frames(protocol, 2.0, T0_S + 1.0)
             if f.arbitration_id == current_id]
    decoder = LogDecoder(protocol, 10.0, 0.5)
    snaps = list(decoder.snapshots(frames + later))
    last_cells_s = max(f.timestamp for f in frames if f.arbitration_id != current_id)
    for t_s, snap in snaps:
        assert snap.current_stale is False
        assert snap.cell_voltages_stale == (t_s - last_cells_s > 0.5 + 1e-9), t_s


def test_garbage_line_and_wrong_dlc_are_counted(tmp_path, protocol, capsys):
    path = write_log(tmp_path / 'pack.log', encoded_frames(protocol))
    lines = path.read_text().splitlines()
    cells_id = next(m.frame_id for m in protocol.mapping.measurement
                    if m.name == 'Pack_CellVoltages')
    lines.insert(5, 'this is not a candump line')
    lines.insert(9, f'({T0_S + 0.001:.6f}) can0 {cells_id:03X}#0011')     # 2 bytes, DLC 8 expected
    lines.insert(12, f'({T0_S + 0.002:.6f}) can0 {cells_id:03X}#ZZ')      # not hex
    path.write_text('\n'.join(lines) + '\n')
    stats = ReadStats()
    frames = list(read_log(path, stats))
    assert (stats.read_errors, stats.frames) == (2, len(lines) - 2)
    out = tmp_path / 'decoded.csv'
    assert tool.main(['decode', str(path), '--profile', PROFILE, '--out', str(out)]) == 0
    text = capsys.readouterr().out
    assert '2 unreadable records' in text and 'wrong_dlc 1' in text
    decoder = LogDecoder(protocol, 10.0, 0.5)
    list(decoder.snapshots(frames))
    assert decoder.assembler.counts['wrong_dlc'] == 1
    assert decoder.assembler.frames_rejected == 1


@pytest.mark.parametrize('name, content, expected', [
    ('missing.log', None, 'no such log file'),
    ('pack.xyz', 'x', 'No read support for unknown log format ".xyz"'),
])
def test_bad_log_exits_2(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    out = tmp_path / 'out.csv'
    assert tool.main(['decode', str(path), '--profile', PROFILE, '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'can_log decode: {path}: ') and expected in err
    assert not out.exists()


def test_play_onto_a_virtual_bus_in_order(tmp_path, protocol):
    frames = encoded_frames(protocol, 0.3)
    path = write_log(tmp_path / 'pack.log', frames)
    channel = f'can_log_test_{os.getpid()}'
    receiver = can.Bus(interface='virtual', channel=channel)
    try:
        bus = CanBus(BusConfig(interface='virtual', channel=channel))
        assert bus.open()
        stats = play(lambda: read_log(path), bus.send, rate=10.0)
        bus.close()
        received = []
        while True:
            msg = receiver.recv(0.5)
            if msg is None:
                break
            received.append(msg)
    finally:
        receiver.shutdown()
    assert (stats.sent, stats.failed, stats.passes) == (len(frames), 0, 1)
    assert [(m.arbitration_id, bytes(m.data)) for m in received] == \
        [(m.arbitration_id, bytes(m.data)) for m in frames]


def test_play_schedule_is_log_time_over_rate():
    # a fake clock: the send times are exactly the log offsets / rate, loop repeats the log
    frames = [can.Message(arbitration_id=i, data=b'\x00', timestamp=100.0 + t)
              for i, t in enumerate((0.0, 0.1, 0.25, 0.25, 1.0))]
    frames.append(can.Message(is_error_frame=True, timestamp=101.5))
    now = [0.0]
    sent_at = []

    def send(msg):
        sent_at.append((msg.arbitration_id, round(now[0], 9)))
        return True

    def wait(delay_s):
        now[0] += delay_s
    stats = play(lambda: iter(frames), send, rate=2.0, loop=False, wait=wait,
                 clock=lambda: now[0])
    assert sent_at == [(0, 0.0), (1, 0.05), (2, 0.125), (3, 0.125), (4, 0.5)]
    assert (stats.sent, stats.skipped, stats.passes) == (5, 1, 1)
    del sent_at[:]
    now[0] = 10.0
    stats = play(lambda: iter(frames), send, rate=4.0, loop=True, wait=wait,
                 clock=lambda: now[0], stop=lambda: len(sent_at) >= 12)
    assert [i for i, _ in sent_at] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert (stats.sent, stats.passes) == (12, 2)
    # each pass restarts the schedule: offsets / 4 from the pass's first frame
    second = [t - sent_at[5][1] for _, t in sent_at[5:10]]
    np.testing.assert_allclose(second, [0.0, 0.025, 0.0625, 0.0625, 0.25], atol=1e-9)


def test_play_tool_on_virtual_bus_counts_frames(tmp_path, protocol, capsys):
    frames = encoded_frames(protocol, 0.2)
    path = write_log(tmp_path / 'pack.asc', frames)
    channel = f'can_log_tool_{os.getpid()}'
    receiver = can.Bus(interface='virtual', channel=channel)
    got = []
    done = threading.Event()

    def drain():
        while not done.is_set() or len(got) < len(frames):
            msg = receiver.recv(0.2)
            if msg is None and done.is_set():
                break
            if msg is not None:
                got.append(msg)
    thread = threading.Thread(target=drain)
    thread.start()
    try:
        assert tool.main(['play', str(path), '--profile', PROFILE, '--rate', '20',
                          '--interface', 'virtual', '--channel', channel]) == 0
    finally:
        done.set()
        thread.join(5.0)
        receiver.shutdown()
    assert f'{len(frames)} frames sent, 0 failed' in capsys.readouterr().out
    assert [m.arbitration_id for m in got] == [m.arbitration_id for m in frames]
    assert all(math.isfinite(m.timestamp) for m in got)


def test_long_silence_is_skipped_after_it_reads_stale(protocol):
    encoder = PackEncoder(protocol)       # one sender: its rolling counters run on
    frames = encoded_frames(protocol, 0.5, T0_S, encoder) + \
        encoded_frames(protocol, 0.5, T0_S + 300.0, encoder)
    decoder = LogDecoder(protocol, 10.0, 0.5)
    snaps = list(decoder.snapshots(frames))
    assert decoder.stats.gaps_skipped == 1
    assert len(snaps) < 30                     # not 3000 snapshots of silence
    times = [t for t, _ in snaps]
    assert times == sorted(times)
    silent = [s for t, s in snaps if T0_S + 0.995 < t < T0_S + 300.0]   # > 0.5 s after 0.49
    assert silent and all(s.cell_voltages_stale and s.current_stale for s in silent)
    assert not snaps[-1][1].cell_voltages_stale


def test_play_ctrl_c_is_clean(tmp_path, protocol, monkeypatch, capsys):
    path = write_log(tmp_path / 'pack.log', encoded_frames(protocol, 0.1))

    def interrupted(*args, **kwargs):
        kwargs['stats'].sent = 3
        raise KeyboardInterrupt
    monkeypatch.setattr(tool, 'play', interrupted)
    assert tool.main(['play', str(path), '--profile', PROFILE, '--interface', 'virtual',
                      '--channel', f'can_log_int_{os.getpid()}']) == 0
    out = capsys.readouterr().out
    assert '3 frames sent, 0 failed' in out and out.rstrip().endswith('(interrupted)')


def test_play_rejects_a_bad_rate(tmp_path, protocol, capsys):
    path = write_log(tmp_path / 'pack.log', encoded_frames(protocol, 0.1))
    assert tool.main(['play', str(path), '--profile', PROFILE, '--rate', '0']) == 2
    assert capsys.readouterr().err == 'can_log play: --rate: expected a number > 0, got 0.0\n'

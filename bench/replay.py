"""Offline replay speed: bags through the estimation and protection cores, in x real time.

Bags come from test/fixtures/bags/make_fixture.py (the lfp_16s pack model with a thermal
event): the shipped 60 s fixture and a 600 s bag written to a temporary folder. Also the
writer's throughput (PackMeasurement messages per second) and bms-report's render time.
"""
import importlib.util
import os
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, 'test', 'fixtures', 'bags')


def _generator():
    spec = importlib.util.spec_from_file_location('make_fixture',
                                                  os.path.join(FIXTURES, 'make_fixture.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best_replay(path, repeats):
    from bms_ros.tools.bag.offline import replay
    best = None
    for _ in range(repeats):
        result = replay(path)
        if best is None or result.wall_s < best.wall_s:
            best = result
    return best


def run():
    rows = []
    fixture = os.path.join(FIXTURES, 'lfp_thermal_event')
    result = _best_replay(fixture, 3)
    rows.append({'benchmark': 'offline replay, fixture (16 cells, 60 s, 601 msgs)',
                 'value': round(result.speed_x_real_time, 1), 'unit': 'x real time',
                 'goal': '> 10', 'note': f'{1000 * result.wall_s / result.measurements:.2f} ms '
                                         'per measurement incl. reading; best of 3'})
    generator = _generator()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'long')
        start = time.perf_counter()
        counts = generator.generate(path, duration_s=600.0)
        # the model's steps dominate generation; writing alone is measured separately below
        generated_s = time.perf_counter() - start
        result = _best_replay(path, 1)
        rows.append({'benchmark': 'offline replay, 600 s bag (6,001 msgs)',
                     'value': round(result.speed_x_real_time, 1), 'unit': 'x real time',
                     'goal': '> 10', 'note': f'{result.wall_s:.1f} s wall; bag generated in '
                                             f'{generated_s:.1f} s ({counts["measurement"]} '
                                             'measurements)'})
        rows.append(_writer_throughput(tmp))
        rows.append(_render_time(fixture, tmp))
    return rows


def _writer_throughput(tmp):
    from bms_ros.core import bag_schema
    from bms_ros.tools.bag.bagio import BagWriter, new_message
    msgtype = 'bms_interfaces/msg/PackMeasurement'
    data = bytes(bag_schema.typestore().serialize_cdr(new_message(
        msgtype, cell_voltages_v=[3.3] * 96, cell_voltage_valid=[True] * 96,
        temperatures_degc=[25.0] * 48, temperature_valid=[True] * 48), msgtype))
    count = 20000
    start = time.perf_counter()
    with BagWriter(os.path.join(tmp, 'throughput')) as writer:
        writer.add_topic('/measurement', msgtype,
                         [bag_schema.qos_fields(bag_schema.STREAM, 10)])
        for k in range(count):
            writer.write('/measurement', 1_700_000_000_000_000_000 + k * 100_000_000, data)
    elapsed = time.perf_counter() - start
    return {'benchmark': 'bag writer throughput (96-cell PackMeasurement, raw CDR)',
            'value': round(count / elapsed), 'unit': 'msg/s', 'goal': '> 1000',
            'note': f'{len(data)} B per message, MCAP uncompressed'}


def _render_time(bag, tmp):
    from bms_ros.tools import report
    start = time.perf_counter()
    data = report.report_data(bag)
    read_s = time.perf_counter() - start
    report.render(data, os.path.join(tmp, 'png'))
    total = time.perf_counter() - start
    return {'benchmark': 'bms-report of the 60 s fixture (7 PNGs)', 'value': round(total, 2),
            'unit': 's', 'goal': '< 10', 'note': f'reading {read_s:.2f} s, rendering '
                                                 f'{total - read_s:.2f} s'}


if __name__ == '__main__':
    for row in run():
        print(row)

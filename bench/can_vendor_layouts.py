"""Decode throughput of the vendor-style layouts (test/fixtures/can/vendors/) from their logs.

    .venv/bin/python -m bench.can_vendor_layouts    # or: bench.run can_vendor_layouts

Per layout: the driver's MeasurementAssembler over the frames of the recorded log (encoded by
cantools from the truth trajectory, extra traffic included: a diagnostics branch, a second J1939
source address, the pack report) against cantools' own ``db.decode_message`` of the same frames
(every DBC of the bus loaded into one database); for statereq_bms also the pack report's
decoder (core/pack_report.py) against the same cantools call. Best of 12 interleaved passes
(bench.can_decode._rates), so both sides meet the same load on a shared machine.
"""
import importlib.util
import os

import can
import cantools

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDORS = os.path.join(REPO, 'test', 'fixtures', 'can', 'vendors')
# layout -> (DBCs, mappings) of its bus
BUSES = {
    'modular_bms + ivt_shunt (two devices)': (('modular_bms.dbc', 'ivt_shunt.dbc'),
                                              ('modular_bms_mapping.yaml',
                                               'ivt_shunt_mapping.yaml'), 'modular_bms'),
    'j1939_bms (29-bit PGN/SA)': (('j1939_bms.dbc',), ('j1939_bms_mapping.yaml',), 'j1939_bms'),
    'statereq_bms (pack BMS)': (('statereq_bms.dbc',), ('statereq_bms_mapping.yaml',),
                                'statereq_bms'),
}


def _make_logs():
    spec = importlib.util.spec_from_file_location('make_logs',
                                                  os.path.join(VENDORS, 'make_logs.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run():
    from bench.can_decode import _rates
    from bms_ros.core.can_codec import CanProtocol, MeasurementAssembler
    from bms_ros.core.pack_report import ReportDecoder
    make_logs = _make_logs()
    rows = []
    for label, (dbcs, mappings, layout) in BUSES.items():
        paths = [os.path.join(VENDORS, d) for d in dbcs]
        maps = [os.path.join(VENDORS, m) for m in mappings]
        protocol = CanProtocol.from_files(paths if len(paths) > 1 else paths[0],
                                          maps if len(maps) > 1 else maps[0], 16, 8)
        db = cantools.database.Database()
        for path in paths:
            db.add_dbc_file(path)
        frames = list(can.LogReader(make_logs.log_path(layout)))

        def ours(batch, assembler):
            for i in range(0, len(batch), 256):
                assembler.feed_many(batch[i:i + 256], 1.0)

        def theirs(batch, _, db=db):
            decode = db.decode_message
            for frame in batch:
                try:
                    decode(frame.arbitration_id, frame.data)
                except KeyError:      # an id in no DBC (the second J1939 pack)
                    pass
        pairs = [(ours, lambda protocol=protocol: MeasurementAssembler(protocol)),
                 (theirs, lambda: None)]
        if protocol.mapping.pack_report:
            def report(batch, decoder):
                for frame in batch:
                    decoder.feed(frame, 1.0)
            pairs.append((report, lambda protocol=protocol: ReportDecoder(protocol.mapping)))
        rates, contexts = _rates(pairs, frames)
        assembler = contexts[0]
        assert assembler.counts['decode_error'] == 0 and assembler.counts['wrong_dlc'] == 0
        rows.append({'benchmark': f'can decode vendor {label}', 'value': rates[0],
                     'unit': 'frames/s', 'goal': '>= 8,000 with headroom',
                     'note': f'its recorded log ({len(frames)} frames); cantools '
                             f'db.decode_message of the same frames: {rates[1]:,.0f} frames/s; '
                             f'assembler / cantools {rates[0] / rates[1]:.2f}'})
        if len(rates) > 2:
            rows.append({'benchmark': f'can decode vendor {label}: pack report', 'value': rates[2],
                         'unit': 'frames/s', 'goal': '>= 8,000 with headroom',
                         'note': 'core/pack_report ReportDecoder over the same frames (it '
                                 'decodes only the report ids); cantools '
                                 f'{rates[1]:,.0f} frames/s'})
    return rows


if __name__ == '__main__':
    for row in run():
        print(f"{row['benchmark']}: {row['value']:,.0f} {row['unit']} ({row['note']})")

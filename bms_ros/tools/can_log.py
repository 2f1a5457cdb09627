"""Play a recorded CAN log onto the bus, or decode it offline into measurements.

    python -m bms_ros.tools.can_log play LOG [--profile P] [--rate X] [--loop]
                                           [--interface I --channel C --host H --port N]
    python -m bms_ros.tools.can_log decode LOG [--profile P] --out OUT.mcap|OUT.csv

LOG: any format python-can reads (candump .log, .asc, .blf, .trc, .csv, .db, .mf4 with
asammdf; also gzipped). play sends the frames at their recorded spacing / rate on the profile's
can: bus (or the one given). decode runs them through the driver's codec on their own log time
(bms_ros.core.can_log) and writes PackMeasurement messages (topic `measurement`, stamps = log
time) into a rosbag2 MCAP bag, or one CSV row per snapshot. Exit 0 ok, 1 bus failure, 2 bad
input (profile, log, output), printed naming the file.
"""
import argparse
import math
import os
import sys
import time

import can
import numpy as np

from bms_ros.core import bag_schema
from bms_ros.core.can_bus import CanBus, load_can_settings
from bms_ros.core.can_codec import CanProtocol
from bms_ros.core.can_log import (
    CanLogError,
    LogDecoder,
    PlayStats,
    ReadStats,
    open_log,
    play,
    read_log,
    write_csv,
)
from bms_ros.core.command_deadline import load_can_failsafe
from bms_ros.core.errors import BmsError
from bms_ros.core.measurement import MESSAGE_FIELDS
from bms_ros.core.profile import Profile, default_profile_path

EXIT_BUS, EXIT_USAGE = 1, 2
PACK_MEASUREMENT = 'bms_interfaces/msg/PackMeasurement'
_STAMPS = ('cell_voltages_stamp', 'temperatures_stamp', 'current_stamp')


def build_parser():
    """The argument parser of the record, decode and play verbs."""
    parser = argparse.ArgumentParser(prog='python -m bms_ros.tools.can_log',
                                     description=__doc__.split('\n')[0])
    verbs = parser.add_subparsers(dest='verb', required=True)
    p = verbs.add_parser('play', help='send a log onto the bus with its recorded timing')
    p.add_argument('log', help='CAN log (python-can format, by suffix)')
    p.add_argument('--profile', default=default_profile_path(), help='profile YAML (its can: bus)')
    p.add_argument('--rate', type=float, default=1.0, help='speed factor (2 = twice as fast)')
    p.add_argument('--loop', action='store_true', help='start again at the end, until Ctrl-C')
    p.add_argument('--interface', choices=sorted(can.interfaces.VALID_INTERFACES),
                   help="python-can interface (default: the profile's)")
    p.add_argument('--channel', help='bus channel (default: the profile\'s)')
    p.add_argument('--host', help='socketcand host')
    p.add_argument('--port', type=int, help='socketcand port')
    p.set_defaults(run=run_play)
    d = verbs.add_parser('decode', help='decode a log offline into an MCAP bag or a CSV')
    d.add_argument('log', help='CAN log (python-can format, by suffix)')
    d.add_argument('--profile', default=default_profile_path(), help='profile YAML (its can: DBC, '
                   'mapping, publish_rate_hz, stale_timeout_s)')
    d.add_argument('--out', required=True,
                   help='OUT.csv: a CSV; otherwise a rosbag2 bag folder (OUT.mcap -> OUT/)')
    d.set_defaults(run=run_decode)
    return parser


# ----------------------------------------------------------------------------- decode

def _time(t_s):
    from bms_ros.tools.bag.bagio import time_message
    return time_message(t_s) if math.isfinite(t_s) else time_message(0.0)


def measurement_message(t_s, snap, frame_id):
    """A rosbags PackMeasurement of a snapshot at log time ``t_s`` (s)."""
    from bms_ros.tools.bag.bagio import new_message
    fields = {}
    for name in MESSAGE_FIELDS:
        value = getattr(snap, name)
        if name in _STAMPS:
            value = _time(value)
        elif name in ('frames_received', 'frames_rejected'):
            value = int(value) & 0xFFFFFFFF
        elif isinstance(value, np.ndarray):
            value = value.astype(bool) if value.dtype == bool else value.astype(np.float32)
        fields[name] = value
    header = new_message('std_msgs/msg/Header', stamp=_time(t_s), frame_id=frame_id)
    return new_message(PACK_MEASUREMENT, header=header, **fields)


def write_bag(out, snapshots, custom, frame_id):
    """Snapshots into a rosbag2 MCAP bag folder, topic /measurement; number written."""
    from bms_ros.tools.bag.bagio import BagWriter
    topic = bag_schema.resolve('', 'measurement')
    with BagWriter(out, custom) as writer:
        writer.add_topic(topic, PACK_MEASUREMENT, [bag_schema.qos_fields(bag_schema.STREAM, 10)])
        for t_s, snap in snapshots:
            writer.write_message(topic, int(round(t_s * 1e9)), measurement_message(
                t_s, snap, frame_id), PACK_MEASUREMENT)
        return writer.counts[topic]


def run_decode(args):
    """The decode verb: a CAN log to a CSV of measurements; the exit code."""
    profile = Profile(args.profile)
    settings = load_can_settings(profile)
    failsafe = load_can_failsafe(profile.section('can'))
    protocol = CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                      profile.pack.cells_series, profile.pack.temperature_sensors)
    open_log(args.log).stop()          # a bad log fails before any output exists
    out = args.out
    is_csv = out.lower().endswith('.csv')
    if not is_csv and out.lower().endswith('.mcap'):
        out = out[:-len('.mcap')]
    if os.path.exists(out):
        raise CanLogError(f'{out}: exists already; choose a new output')
    decoder = LogDecoder(protocol, settings.publish_rate_hz, settings.stale_timeout_s,
                         failsafe.counter_errors_stale)
    read = ReadStats()
    snapshots = decoder.snapshots(read_log(args.log, read))
    try:
        if is_csv:
            written = write_csv(out, snapshots, protocol.cells_series,
                                protocol.temperature_sensors)
        else:
            custom = {'bms_ros.namespace': '', 'bms_ros.profile': profile.path,
                      'bms_ros.source': f'bms_ros.tools.can_log decode {os.path.abspath(args.log)}'}
            written = write_bag(out, snapshots, custom, profile.pack.name)
    except OSError as error:
        raise CanLogError(f'{out}: cannot write: {error.strerror or error}') from None
    stats = decoder.stats
    print(f'{args.log}: {read.frames} frames read, {read.read_errors} unreadable records'
          + (f' (last: {read.last_error})' if read.read_errors else ''))
    span = stats.last_frame_s - stats.first_frame_s
    print(f'{written} measurements every {decoder.period_s:g} s of log time '
          f'({span:.3f} s of log) -> {out}')
    counters = decoder.counters()
    print('assembler: ' + ', '.join(f'{k} {v}' for k, v in counters.items()
                                    if k != 'counter_stale'))
    if counters['counter_stale']:
        print('stale by rolling counter at the end: ' + ', '.join(counters['counter_stale']))
    print('stale snapshots: ' + ', '.join(f'{g} {n}' for g, n in stats.stale_snapshots.items()
                                          if g in _mapped_groups(protocol)))
    if stats.gaps_skipped or stats.bad_timestamps:
        print(f'gaps skipped (> {decoder.max_gap_s:g} s): {stats.gaps_skipped}, '
              f'frames without a valid timestamp: {stats.bad_timestamps}')
    return 0


def _mapped_groups(protocol):
    from bms_ros.core.can_mapping import GROUPS
    mapped = protocol.mapping.mapped_fields()
    return {g for g, names in GROUPS.items() if mapped.intersection(names)}


# ----------------------------------------------------------------------------- play

def run_play(args):
    """The play verb: a CAN log onto a bus at ``--rate`` x real time; the exit code."""
    if not args.rate > 0 or not math.isfinite(args.rate):
        raise CanLogError(f'--rate: expected a number > 0, got {args.rate}')
    profile = Profile(args.profile)
    settings = load_can_settings(profile).with_overrides(
        interface=args.interface, channel=args.channel, host=args.host, port=args.port)
    open_log(args.log).stop()
    bus = CanBus(settings.bus)
    if not bus.open():
        print(f'can_log play: {bus.last_error}', file=sys.stderr)
        return EXIT_BUS
    read = ReadStats()
    stats = PlayStats()

    def wait(delay_s):
        # receiving drains what others send us (the hub's queue for us stays short) and lets
        # CanBus reopen a lost bus with its back-off
        bus.recv(min(delay_s, 0.05))

    def send(msg):
        if not bus.connected:
            bus.recv(0.0)
        return bus.send(msg)

    started = time.monotonic()
    interrupted = False
    try:
        play(lambda: read_log(args.log, read), send, rate=args.rate, loop=args.loop, wait=wait,
             stats=stats)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bus.close()
    print(f'{args.log} -> {settings.bus.describe()}: {stats.sent} frames sent, '
          f'{stats.failed} failed, {stats.skipped} error frames skipped, {stats.passes} '
          f'passes, {read.read_errors} unreadable records, '
          f'{time.monotonic() - started:.1f} s' + (' (interrupted)' if interrupted else ''))
    return 0


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 1 bus failure, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BmsError as error:          # ConfigError, CanLogError, BagError
        print(f'can_log {args.verb}: {error}', file=sys.stderr)
        return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())

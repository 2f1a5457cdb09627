"""Read one bag for the fleet analysis: its pack's identity and its measurements as columns.

Uses ``bms_ros.tools.bag.bagio.Bag`` (rosbags) to open the bag and list its topics; the
measurement CDR bytes are decoded all at once by ``bms_ros.core.fleet.cdr``. Everything that
makes a bag unusable raises :class:`BagSkipped` with the reason (the fleet reports it and goes
on): unreadable or truncated, no measurement topic, several packs in one bag, measurements of
another cell count than the profile's pack, no usable measurement.
"""
import os

import numpy as np

from bms_ros.core.bag_schema import BagError
from bms_ros.core.errors import BmsError
from bms_ros.core.fleet.cdr import decode_measurements, layout_of

SERIAL_KEY = 'bms_ros.serial_number'


class BagSkipped(BmsError):
    """A bag the fleet analysis cannot use; ``reason`` is a short category."""

    def __init__(self, path, reason, detail):
        super().__init__(f'{path}: {detail}')
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail


def bag_identity(bag):
    """(serials, namespaces) a bag's data belongs to: custom data, battery_state serial numbers
    and the namespaces holding a measurement topic.
    """
    serials = set()
    if bag.custom_data.get(SERIAL_KEY):
        serials.add(bag.custom_data[SERIAL_KEY])
    namespaces = sorted({t.rsplit('/', 1)[0] for t in bag.topics
                         if t.rsplit('/', 1)[-1] == 'measurement'})
    for topic in [t for t in bag.topics if t.rsplit('/', 1)[-1] == 'battery_state']:
        for _, _, message in bag.messages({topic}):
            if message.serial_number:
                serials.add(str(message.serial_number))
    return sorted(serials), namespaces


def read_bag(path, profile_path=None):
    """{'serial', 'profile', 'columns', 'receive_s', 'rejected', 'namespace'} of one bag.

    :raises BagSkipped: the bag cannot be analysed (reason and detail say why).
    """
    from bms_ros.core.profile import Profile
    from bms_ros.tools.bag.bagio import Bag
    from bms_ros.tools.bag.offline import resolve_profile
    try:
        with Bag(path) as bag:
            serials, namespaces = bag_identity(bag)
            if not namespaces:
                topics = ', '.join(sorted(bag.topics)) or 'none'
                raise BagSkipped(path, 'no_measurement', 'no measurement topic (not a bms_ros '
                                 f'pack recording; topics: {topics})')
            if len(namespaces) > 1 or len(serials) > 1:
                raise BagSkipped(path, 'several_packs', 'holds several packs ('
                                 + ', '.join(serials or [n or '/' for n in namespaces])
                                 + '): record one pack per bag')
            profile_file = resolve_profile(bag, profile_path)
            topic = namespaces[0] + '/measurement'
            blobs, receive = [], []
            for _, _, t_ns, data in bag.raw_messages({topic}):
                blobs.append(bytes(data))
                receive.append(t_ns * 1e-9)
            namespace = namespaces[0].strip('/')
            expected = sum(int(getattr(c, 'msgcount', 0) or 0) for c in bag.connections
                           if c.topic == topic)
            if expected and len(blobs) < expected:
                raise BagSkipped(path, 'truncated', f'{len(blobs)} of the {expected} '
                                 'measurement messages its metadata counts could be read')
    except BagSkipped:
        raise
    except (BagError, OSError, ValueError, KeyError, IndexError, EOFError, AssertionError,
            TypeError) as error:
        raise BagSkipped(path, 'unreadable', f'cannot be read: {error}') from None
    except Exception as error:   # rosbags raises its own error types on a corrupt MCAP
        raise BagSkipped(path, 'unreadable',
                         f'cannot be read: {type(error).__name__}: {error}') from None
    profile = Profile(profile_file)
    n, sensors = profile.pack.cells_series, profile.pack.temperature_sensors
    serial = serials[0] if serials else profile.pack.serial_number
    by_size = {}
    for i, blob in enumerate(blobs):
        by_size.setdefault(len(blob), []).append(i)
    parts, rejected = [], 0
    for indices in by_size.values():
        layout = layout_of(blobs[indices[0]])
        if layout is None or layout.cells != n or layout.sensors != sensors:
            rejected += len(indices)       # wrong array lengths: the node rejects these too
            continue
        parts.append((indices, decode_measurements([blobs[i] for i in indices], layout)))
    if not parts:
        raise BagSkipped(path, 'no_usable_measurement',
                         f'{len(blobs)} measurement messages, none of {n} cells and {sensors} '
                         f'sensors (profile {profile_file})' if blobs else
                         'no measurement message')
    order = np.concatenate([np.asarray(ix) for ix, _ in parts])
    columns = {key: np.concatenate([c[key] for _, c in parts]) for key in parts[0][1]}
    return {'serial': serial, 'serial_source': 'bag' if serials else 'profile',
            'profile': profile_file, 'profile_obj': profile, 'namespace': namespace,
            'columns': columns, 'receive_s': np.asarray(receive)[order], 'rejected': rejected,
            'messages': len(blobs)}


# ------------------------------------------------------------------------------ CAN logs

# the CAN log formats the fleet picks up in folders (python-can's readers; also gzipped)
CAN_LOG_SUFFIXES = ('.log', '.asc', '.blf', '.trc', '.csv')
FOLDER_CAN_PROFILE = 'can_profile.yaml'      # a profile YAML next to the logs it decodes
_NO_SERIAL = 'unknown'                       # what Profile gives when serial_number is absent


def is_can_log(path):
    """True for a file whose suffix is a CAN log format the fleet reads."""
    name = os.fspath(path).lower()
    name = name.removesuffix('.gz')
    return name.endswith(CAN_LOG_SUFFIXES) and os.path.isfile(path)


def can_log_profile(path, can_profile=None):
    """The profile that decodes a log: can_profile.yaml in its folder, else ``can_profile``,
    else the default profile.
    """
    from bms_ros.core.profile import default_profile_path
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), FOLDER_CAN_PROFILE)
    if os.path.isfile(beside):
        return beside
    return can_profile or default_profile_path()


def can_log_serial(path, profile):
    """The pack's serial number: the profile's, else the log's file name up to its first '_'
    or '.' (PACK42_2026-01-03.log -> PACK42).
    """
    if profile.pack.serial_number and profile.pack.serial_number != _NO_SERIAL:
        return profile.pack.serial_number
    return os.path.basename(os.fspath(path)).split('.')[0].split('_')[0] or _NO_SERIAL


def _can_protocol(profile):
    from bms_ros.core.can_bus import load_can_settings
    from bms_ros.core.can_codec import CanProtocol
    from bms_ros.core.command_deadline import load_can_failsafe
    settings = load_can_settings(profile)
    failsafe = load_can_failsafe(profile.section('can'))
    protocol = CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                      profile.pack.cells_series, profile.pack.temperature_sensors)
    return settings, failsafe, protocol


def probe_can_log(path, can_profile=None):
    """{'path', 'serial', 'start_unix_s'} of a CAN log from its first frame (nothing decoded).

    :raises BagSkipped: no profile, log unreadable or empty.
    """
    from bms_ros.core.can_log import CanLogError, ReadStats, read_log
    from bms_ros.core.profile import Profile
    profile_file = can_log_profile(path, can_profile)
    try:
        profile = Profile(profile_file)
    except BmsError as error:
        raise BagSkipped(path, 'bad_can_profile', f'profile {profile_file}: {error}') from None
    stats = ReadStats()
    try:
        first = next(iter(read_log(path, stats)), None)
    except CanLogError as error:
        raise BagSkipped(path, 'unreadable', f'cannot be read as a CAN log: {error}') from None
    if first is None:
        raise BagSkipped(path, 'empty_log', 'no CAN frame could be read' + (
            f' ({stats.last_error})' if stats.read_errors else ''))
    return {'path': os.fspath(path), 'serial': can_log_serial(path, profile),
            'start_unix_s': float(first.timestamp), 'profile': profile_file}


def read_can_log(path, can_profile=None):
    """A CAN log decoded by the driver's codec (bms_ros.core.can_log.LogDecoder) into the same
    dict as :func:`read_bag` (columns of the measurements the driver would have published).

    :raises BagSkipped: no profile, unreadable or empty log, or no frame the profile's DBC and
        mapping decode into a complete measurement (wrong DBC, another pack).
    """
    from bms_ros.core.can_log import CanLogError, LogDecoder, ReadStats, read_log
    from bms_ros.core.profile import Profile
    profile_file = can_log_profile(path, can_profile)
    try:
        profile = Profile(profile_file)
        settings, failsafe, protocol = _can_protocol(profile)
    except BmsError as error:
        raise BagSkipped(path, 'bad_can_profile', f'profile {profile_file}: {error}') from None
    decoder = LogDecoder(protocol, settings.publish_rate_hz, settings.stale_timeout_s,
                         failsafe.counter_errors_stale)
    read = ReadStats()
    rows = {name: [] for name in _SNAPSHOT_COLUMNS}
    t_s = []
    try:
        for t, snap in decoder.snapshots(read_log(path, read)):
            t_s.append(t)
            for column, name in _SNAPSHOT_COLUMNS.items():
                rows[column].append(getattr(snap, name))
    except CanLogError as error:
        raise BagSkipped(path, 'unreadable', f'cannot be read as a CAN log: {error}') from None
    if not read.frames:
        raise BagSkipped(path, 'empty_log', 'no CAN frame could be read' + (
            f' ({read.last_error})' if read.read_errors else ''))
    if not t_s:
        raise BagSkipped(path, 'undecodable', f'{read.frames} frames, no valid timestamp')
    columns = {c: np.asarray(v) for c, v in rows.items()}
    columns['header_stamp_s'] = np.asarray(t_s, dtype=float)
    cells = protocol.cells_series
    for name in ('cell_voltage_valid', 'cell_balancing'):
        if columns[name].shape != (len(t_s), cells):     # not mapped by this DBC: none
            columns[name] = np.zeros((len(t_s), cells), dtype=bool)
    for name in ('cell_voltages_v', 'temperatures_degc', 'pack_current_a', 'pack_voltage_v',
                 'link_voltage_v'):
        columns[name] = columns[name].astype(float)
    # a snapshot the driver would publish holds every cell once (not all stale or NaN)
    usable = ~columns['cell_voltages_stale'] & np.isfinite(columns['cell_voltages_v']).all(axis=1)
    if not usable.any():
        counters = decoder.counters()
        raise BagSkipped(path, 'undecodable', f'{read.frames} frames, none decoded into a '
                         f'measurement of {protocol.cells_series} cells by profile '
                         f'{profile_file} (frames rejected {counters["frames_rejected"]}, '
                         f'ignored {counters["frames_ignored"]}): wrong DBC or another pack')
    first = int(np.argmax(usable))        # before the first complete snapshot: start-up
    columns = {c: v[first:] for c, v in columns.items()}
    return {'serial': can_log_serial(path, profile), 'serial_source': 'can_log',
            'profile': profile_file, 'profile_obj': profile, 'namespace': '',
            'columns': columns, 'receive_s': columns['header_stamp_s'],
            'rejected': int(read.read_errors), 'messages': int(read.frames)}


# replay column -> AssembledMeasurement attribute
_SNAPSHOT_COLUMNS = {
    **{name: name for name in (
        'cell_voltages_v', 'cell_voltage_valid', 'temperatures_degc', 'temperature_valid',
        'cell_balancing', 'frames_received', 'frames_rejected', 'pack_current_a',
        'pack_voltage_v', 'link_voltage_v', 'negative_contactor_closed',
        'positive_contactor_closed', 'precharge_relay_closed', 'cell_voltages_stale',
        'temperatures_stale', 'current_stale', 'contactors_stale')},
    'cell_voltages_stamp_s': 'cell_voltages_stamp', 'temperatures_stamp_s': 'temperatures_stamp',
    'current_stamp_s': 'current_stamp'}

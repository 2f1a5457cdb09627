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
    and the namespaces holding a measurement topic."""
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
                raise BagSkipped(path, 'no_measurement', 'no measurement topic (not a bms_ros '
                                 f'pack recording; topics: {", ".join(sorted(bag.topics)) or "none"})')
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

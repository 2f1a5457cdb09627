"""Write and read rosbag2 (MCAP) bags of the suite with rosbags; no rclpy.

The writer is rosbags' rosbag2 Writer (metadata version 9, storage mcap) with one addition that
rosbag2's own MCAP plugin (Jazzy) writes too: the channel metadata key ``topic_type_hash``
(the RIHS01 hash), besides ``offered_qos_profiles``.
"""
import os
from io import BytesIO
from pathlib import Path

from rosbags.interfaces import ConnectionExtRosbag2
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.rosbag2.storage_mcap import Channel, McapWriter, write_channel, write_string

from bms_ros.core import bag_schema
from bms_ros.core.bag_schema import BagError, new_message, time_message, upgrade_message  # noqa: F401  re-exported

METADATA_VERSION = 9


class _McapWriter(McapWriter):
    """rosbags' MCAP writer; channels also carry ``topic_type_hash`` as rosbag2 Jazzy's do."""

    def add_connection(self, connection, offered_qos_profiles):
        metadata = BytesIO()
        for key, value in (('offered_qos_profiles', offered_qos_profiles),
                           ('topic_type_hash', connection.digest)):
            write_string(metadata, key)
            write_string(metadata, value)
        channel = Channel(connection.id, connection.msgtype, connection.topic,
                          connection.ext.serialization_format, metadata.getvalue())
        self.channels.append(channel)
        self.channel_stats[connection.id] = 0
        write_channel(self.chunk.bio, channel, self.schemas)


class _Writer(Writer):
    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: _McapWriter}


class BagWriter:
    """A rosbag2 bag being written: one connection per topic, CDR bytes with ns timestamps."""

    def __init__(self, path, custom_data=None):
        path = Path(path)
        if path.exists():
            raise BagError(f'{path}: exists already; choose a new bag folder')
        self.path = path
        self._writer = _Writer(path, version=METADATA_VERSION, storage_plugin=StoragePlugin.MCAP)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        try:
            self._writer.open()
        except (WriterError, OSError) as error:
            raise BagError(f'{path}: cannot create the bag: {error}') from None
        self._connections = {}
        self.counts = {}
        self.closed = False

    def add_topic(self, topic, msgtype, offered_qos=()):
        """Declare ``topic`` (absolute name) of ``msgtype`` with its offered QoS (field dicts)."""
        if topic in self._connections:
            return self._connections[topic]
        store = bag_schema.typestore()
        qos = [bag_schema.rosbags_qos(q) for q in offered_qos]
        connection = self._writer.add_connection(
            topic, msgtype, msgdef=bag_schema.message_definition(msgtype),
            rihs01=store.hash_rihs01(msgtype), offered_qos_profiles=qos)
        self._connections[topic] = connection
        self.counts[topic] = 0
        return connection

    def has_topic(self, topic):
        """True once ``topic`` was added."""
        return topic in self._connections

    def write(self, topic, timestamp_ns, data):
        """Append serialized CDR ``data`` of a declared topic at ``timestamp_ns``."""
        self._writer.write(self._connections[topic], int(timestamp_ns), data)
        self.counts[topic] += 1

    def write_message(self, topic, timestamp_ns, message, msgtype):
        """Serialize a rosbags message object to CDR and append it."""
        data = bag_schema.typestore().serialize_cdr(message, msgtype)
        self.write(topic, timestamp_ns, data)

    def close(self):
        """Write the MCAP summary and metadata.yaml; safe to call twice."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------ reading

class Bag:
    """A bag opened for reading: topics, metadata, messages (raw or deserialized)."""

    def __init__(self, path):
        path = Path(path)
        if not path.exists():
            raise BagError(f'{path}: no such bag')
        self.path = path
        try:
            self._reader = Reader(path)
            self._reader.open()
        except (ReaderError, OSError, KeyError, ValueError) as error:
            raise BagError(f'{path}: cannot open as a rosbag2 bag: {error}') from None
        self.connections = [c for c in self._reader.connections
                            if isinstance(c.ext, ConnectionExtRosbag2)]
        self.custom_data = dict(getattr(self._reader.storage.metadata, 'custom', None) or {}) \
            if hasattr(self._reader.storage, 'metadata') else {}
        self.topics = {c.topic: c.msgtype for c in self.connections}
        current = bag_schema.typestore()
        # msgtype -> (typestore that reads it, upgrade to today's definition)
        self._decoders = {}
        for c in self.connections:
            if c.msgtype not in self._decoders:
                self._decoders[c.msgtype] = _decoder(c, current)

    @property
    def upgraded_types(self):
        """Types recorded with another definition than today's (read, then upgraded)."""
        return sorted(t for t, (_, upgrade) in self._decoders.items() if upgrade)

    @property
    def start_ns(self):
        """Time of the first message (ns since the epoch)."""
        return self._reader.start_time

    @property
    def end_ns(self):
        """Time of the last message (ns since the epoch)."""
        return self._reader.end_time

    @property
    def namespace(self):
        """The namespace the bag was recorded in (custom data), '' if unknown."""
        return self.custom_data.get('bms_ros.namespace', '')

    def find_topic(self, name, namespace=None):
        """Absolute topic of relative ``name`` in ``namespace`` (None: the only one); or None.

        BagError if several namespaces hold ``name`` and none was chosen.
        """
        if namespace is not None:
            topic = bag_schema.resolve(namespace, name)
            return topic if topic in self.topics else None
        matches = sorted(t for t in self.topics if t.rsplit('/', 1)[-1] == name)
        if not matches:
            return None
        if len(matches) > 1:
            preferred = bag_schema.resolve(self.namespace, name)
            if preferred in matches:
                return preferred
            raise BagError(f'{self.path}: {name!r} is recorded in several namespaces '
                           f'({", ".join(matches)}); choose one with --namespace')
        return matches[0]

    def raw_messages(self, topics=None, current=False):
        """(topic, msgtype, timestamp_ns, cdr bytes) in time order; ``topics``: absolute names.

        ``current``: messages of an older definition re-serialised as today's type (for
        publishing to today's subscribers); otherwise the bytes as recorded.
        """
        wanted = [c for c in self.connections if topics is None or c.topic in topics]
        if not wanted:
            return
        today = bag_schema.typestore()
        for connection, timestamp, data in self._reader.messages(connections=wanted):
            msgtype = connection.msgtype
            if current:
                store, upgrade = self._decoders.get(msgtype, (today, False))
                if upgrade:
                    data = today.serialize_cdr(
                        upgrade_message(store.deserialize_cdr(data, msgtype), msgtype), msgtype)
            yield connection.topic, msgtype, timestamp, data

    def messages(self, topics=None):
        """(topic, timestamp_ns, message) with messages as rosbags objects (field names as ROS)."""
        current = bag_schema.typestore()
        for topic, msgtype, timestamp, data in self.raw_messages(topics):
            store, upgrade = self._decoders.get(msgtype, (current, False))
            message = store.deserialize_cdr(data, msgtype)
            yield topic, timestamp, upgrade_message(message, msgtype) if upgrade else message

    def read(self, name, namespace=None):
        """[(timestamp_ns, message)] of relative topic ``name``; [] if not recorded."""
        topic = self.find_topic(name, namespace)
        if topic is None:
            return []
        return [(t, msg) for _, t, msg in self.messages({topic})]

    def close(self):
        """Close the bag (a no-op if closed)."""
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def is_bag(path):
    """True if ``path`` looks like a rosbag2 folder (metadata.yaml) or an .mcap file."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, 'metadata.yaml')) or path.endswith('.mcap')


# ------------------------------------------------------------------------ older definitions

def _decoder(connection, current):
    """(typestore, upgrade) for one connection: today's types when the bag's definition is
    today's; else a typestore of the bag's own definition (a bag of an older release: additive
    message changes append fields, which today's definition would read past the end).
    """
    msgtype = connection.msgtype
    if msgtype not in current.types:
        return current, False          # not ours: deserialising it fails clearly, later
    digest = getattr(connection, 'digest', '') or ''
    msgdef = getattr(connection, 'msgdef', None)
    text = getattr(msgdef, 'data', '') or ''
    if not digest.startswith('RIHS01_') or not text \
            or digest == current.hash_rihs01(msgtype):
        return current, False
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    try:
        own = get_typestore(Stores.ROS2_JAZZY)
        own.register(get_types_from_msg(text, msgtype))
    except Exception as error:  # noqa: BLE001  a definition rosbags cannot parse
        raise BagError(f'{msgtype}: the bag\'s own message definition cannot be read: '
                       f'{error}') from None
    return own, True

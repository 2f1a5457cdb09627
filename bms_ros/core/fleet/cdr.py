"""PackMeasurement in CDR (little endian) without a message object: encode one, decode many.

The layout follows bms_interfaces/msg/PackMeasurement.msg field by field (XCDR1 as rosbag2
stores it: a 4-byte encapsulation header, then each primitive aligned to its size from the
start of the payload). Messages of one bag share cell and sensor counts and frame_id, so they
have one length and one layout: :func:`decode_measurements` reads every field of all of them
at once as numpy columns. Fields added at the end of the message later (additive .msg
changes) are skipped when decoding and written as their defaults when encoding.
Checked against rosbags' serializer in test/core/test_fleet_synth.py.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

HEADER = b'\x00\x01\x00\x00'        # CDR_LE encapsulation


def _pad(offset: int, size: int) -> int:
    return (-offset) % size


class MeasurementLayout:
    """Byte offsets of every PackMeasurement field for ``cells``, ``sensors``, ``frame_id``."""

    def __init__(self, cells: int, sensors: int, frame_id: str = '') -> None:
        self.cells = int(cells)
        self.sensors = int(sensors)
        self.frame_id = frame_id.encode('utf-8')
        off = 0
        self.fields: dict[str, tuple[int, int]] = {}   # name -> (offset, count)

        def take(name: str, size: int, align: int, count: int = 1) -> None:
            nonlocal off
            off += _pad(off, align)
            self.fields[name] = (off, count)
            off += size * count

        take('stamp_sec', 4, 4)
        take('stamp_nanosec', 4, 4)
        take('frame_id_len', 4, 4)
        take('frame_id', 1, 1, len(self.frame_id) + 1)
        take('cells_count', 4, 4)
        take('cell_voltages_v', 4, 4, self.cells)
        take('valid_count', 4, 4)
        take('cell_voltage_valid', 1, 1, self.cells)
        take('sensors_count', 4, 4)
        take('temperatures_degc', 4, 4, self.sensors)
        take('tvalid_count', 4, 4)
        take('temperature_valid', 1, 1, self.sensors)
        take('pack_current_a', 4, 4)
        take('pack_voltage_v', 4, 4)
        take('link_voltage_v', 4, 4)
        take('negative_contactor_closed', 1, 1)
        take('positive_contactor_closed', 1, 1)
        take('precharge_relay_closed', 1, 1)
        take('balancing_count', 4, 4)
        take('cell_balancing', 1, 1, self.cells)
        for group in ('cell_voltages', 'temperatures', 'current'):
            take(f'{group}_stamp_sec', 4, 4)
            take(f'{group}_stamp_nanosec', 4, 4)
        for flag in ('cell_voltages_stale', 'temperatures_stale', 'current_stale',
                     'contactors_stale'):
            take(flag, 1, 1)
        take('frames_received', 4, 4)
        take('frames_rejected', 4, 4)
        self.prefix_size = len(HEADER) + off
        self.size = self.prefix_size
        self._template: bytes | None = None

    def _make_template(self) -> bytes:
        # fields added to the message after these (additive .msg changes) are written as
        # the type's defaults: the template is rosbags' serialization of a default message
        buf = bytearray(self.prefix_size)
        try:
            from bms_ros.core import bag_schema
            from bms_ros.core.bag_schema import new_message
            default = new_message(
                'bms_interfaces/msg/PackMeasurement',
                header=new_message('std_msgs/msg/Header', frame_id=self.frame_id.decode()),
                cell_voltages_v=np.zeros(self.cells), cell_voltage_valid=np.zeros(self.cells, bool),
                temperatures_degc=np.zeros(self.sensors),
                temperature_valid=np.zeros(self.sensors, bool),
                cell_balancing=np.zeros(self.cells, bool))
            full = bytes(bag_schema.typestore().serialize_cdr(
                default, 'bms_interfaces/msg/PackMeasurement'))
            if len(full) >= self.prefix_size:
                buf = bytearray(full)
        except Exception:   # no typestore here: the fields this layout knows
            pass
        self.size = len(buf)
        buf[:4] = HEADER
        for name, count in (('frame_id_len', len(self.frame_id) + 1), ('cells_count', self.cells),
                            ('valid_count', self.cells), ('sensors_count', self.sensors),
                            ('tvalid_count', self.sensors), ('balancing_count', self.cells)):
            struct.pack_into('<I', buf, 4 + self.fields[name][0], count)
        start = 4 + self.fields['frame_id'][0]
        buf[start:start + len(self.frame_id)] = self.frame_id
        return bytes(buf)

    def encode(self, t_ns: int, cell_voltages_v: ArrayLike, temperatures_degc: ArrayLike,
               pack_current_a: float, pack_voltage_v: float, link_voltage_v: float,
               contactors: Sequence[bool], cell_balancing: ArrayLike,
               cell_voltage_valid: ArrayLike | None = None,
               temperature_valid: ArrayLike | None = None) -> bytes:
        """CDR bytes of one measurement stamped ``t_ns`` (every group stamped the same);
        ``contactors`` = (negative, positive, precharge) closed; validity from finiteness.
        """
        if self._template is None:
            self._template = self._make_template()
        buf = bytearray(self._template)
        f = self.fields
        sec, nsec = divmod(int(t_ns), 10 ** 9)
        v = np.asarray(cell_voltages_v, dtype=np.float32)
        t = np.asarray(temperatures_degc, dtype=np.float32)
        valid = np.isfinite(v) if cell_voltage_valid is None else cell_voltage_valid
        tvalid = np.isfinite(t) if temperature_valid is None else temperature_valid

        def put(name: str, data: bytes) -> None:
            start = 4 + f[name][0]
            buf[start:start + len(data)] = data

        put('stamp_sec', struct.pack('<iI', sec, nsec))
        put('cell_voltages_v', v.tobytes())
        put('cell_voltage_valid', np.asarray(valid, dtype=np.uint8).tobytes())
        put('temperatures_degc', t.tobytes())
        put('temperature_valid', np.asarray(tvalid, dtype=np.uint8).tobytes())
        put('pack_current_a', struct.pack('<fff', pack_current_a, pack_voltage_v,
                                          link_voltage_v))
        put('negative_contactor_closed', bytes(bool(c) for c in contactors))
        put('cell_balancing', np.asarray(cell_balancing, dtype=np.uint8).tobytes())
        for group in ('cell_voltages', 'temperatures', 'current'):
            put(f'{group}_stamp_sec', struct.pack('<iI', sec, nsec))
        return bytes(buf)


def layout_of(data: bytes) -> MeasurementLayout | None:
    """The MeasurementLayout of one CDR PackMeasurement (read from its counts), or None."""
    try:
        if bytes(data[:4]) != HEADER:
            return None
        (name_len,) = struct.unpack_from('<I', data, 4 + 8)
        frame_id = bytes(data[16:16 + name_len - 1]).decode('utf-8')
        off = 8 + 4 + name_len
        off += _pad(off, 4)
        (cells,) = struct.unpack_from('<I', data, 4 + off)
        off += 4 + 4 * cells
        off += _pad(off, 4)
        off += 4 + cells
        off += _pad(off, 4)
        (sensors,) = struct.unpack_from('<I', data, 4 + off)
        layout = MeasurementLayout(cells, sensors, frame_id)
    except (struct.error, UnicodeDecodeError, ValueError):
        return None
    # trailing bytes: fields added to the message after the ones read here
    if layout.prefix_size > len(data):
        return None
    layout.size = len(data)
    return layout


def decode_measurements(blobs: Sequence[bytes], layout: MeasurementLayout
                        ) -> dict[str, NDArray[Any]]:
    """Columns of equally long CDR measurements: {field: array over messages (x per cell)}.

    ``blobs``: bytes of ``layout.size`` each (as :func:`layout_of` read it). Stamps as s.
    """
    raw = np.frombuffer(b''.join(blobs), dtype=np.uint8).reshape(len(blobs), layout.size)
    body = raw[:, 4:]
    f = layout.fields

    def col(name: str, dtype: DTypeLike, count: int | None = None) -> NDArray[Any]:
        off, n = f[name]
        n = n if count is None else count
        size = np.dtype(dtype).itemsize
        return np.ascontiguousarray(body[:, off:off + size * n]).view(dtype).reshape(len(blobs), n)

    def stamp(prefix: str) -> NDArray[np.float64]:
        return col(prefix + '_sec', '<i4')[:, 0] + 1e-9 * col(prefix + '_nanosec', '<u4')[:, 0]

    out = {
        'header_stamp_s': stamp('stamp'),
        'cell_voltages_v': col('cell_voltages_v', '<f4').astype(float),
        'cell_voltage_valid': col('cell_voltage_valid', np.uint8).astype(bool),
        'temperatures_degc': col('temperatures_degc', '<f4').astype(float),
        'temperature_valid': col('temperature_valid', np.uint8).astype(bool),
        'cell_balancing': col('cell_balancing', np.uint8).astype(bool),
        'frames_received': col('frames_received', '<u4')[:, 0],
        'frames_rejected': col('frames_rejected', '<u4')[:, 0],
    }
    for name in ('pack_current_a', 'pack_voltage_v', 'link_voltage_v'):
        out[name] = col(name, '<f4')[:, 0].astype(float)
    for name in ('negative_contactor_closed', 'positive_contactor_closed',
                 'precharge_relay_closed', 'cell_voltages_stale', 'temperatures_stale',
                 'current_stale', 'contactors_stale'):
        out[name] = col(name, np.uint8)[:, 0].astype(bool)
    for group in ('cell_voltages', 'temperatures', 'current'):
        out[group + '_stamp_s'] = stamp(group + '_stamp')
    return out

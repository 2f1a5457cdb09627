"""One CAN frame's payload to raw signal values, strictly: a payload that does not decode
raises DecodeError. The stream decoders (can_decode.MeasurementAssembler, can_encode's
decode_command, pack_report.decode_request) count such a frame as ``decode_error`` instead.
"""
from typing import Any

from .errors import DecodeError


def decode_frame(dbc_message: Any, data: Any) -> dict[str, Any]:
    """Raw (unscaled, no choices) signal values of one frame's payload, by signal name.

    :param dbc_message: the cantools message of the frame's id.
    :param data: the payload bytes.
    :raises DecodeError: the payload does not decode (too short, bad multiplexer value, ...);
        the message names the frame, its id and the cause.
    """
    try:
        payload = bytes(data)
        raw: dict[str, Any] = dbc_message.decode(payload, decode_choices=False, scaling=False)
        return raw
    except Exception as error:  # noqa: BLE001  cantools DecodeError, bitstruct errors, ...
        size = f'{len(data)} bytes' if isinstance(data, (bytes, bytearray)) else repr(data)
        raise DecodeError(f'frame {dbc_message.name} (id 0x{dbc_message.frame_id:X}, '
                          f'{size}): {error}') from error

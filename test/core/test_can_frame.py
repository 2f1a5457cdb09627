"""core/can_frame.decode_frame: the strict single-frame decode raises DecodeError (a BmsError)."""
import os

import pytest

from bms_ros.core.can_frame import decode_frame
from bms_ros.core.can_mapping import load_dbc
from bms_ros.core.errors import BmsError, DecodeError
from bms_ros.core.profile import config_dir


def _message():
    db = load_dbc(os.path.join(config_dir(), 'can', 'bms_ros.dbc'))
    return max(db.messages, key=lambda m: (m.length, -m.frame_id))   # an 8-byte frame


def test_a_full_payload_decodes_to_raw_values():
    message = _message()
    raw = decode_frame(message, bytes(message.length))
    assert set(raw) <= {s.name for s in message.signals}
    assert all(value == 0 for value in raw.values())


@pytest.mark.parametrize('data', [b'', b'\x00', None])
def test_a_short_or_missing_payload_raises_decode_error_naming_the_frame(data):
    message = _message()
    with pytest.raises(DecodeError) as caught:
        decode_frame(message, data)
    assert isinstance(caught.value, BmsError)
    assert str(caught.value).startswith(f'frame {message.name} (id 0x{message.frame_id:X}, ')

"""bmsctl's replies to the operator's service calls (reset_trips)."""
from __future__ import annotations

from collections.abc import Sequence


def reset_reply(success: bool, message: str, still_latched: Sequence[str] = ()) -> str:
    """bmsctl's line for a ResetTrips response: granted, partly granted or refused, each list
    once (the protection node's message already names what stays latched and why).
    """
    text = message.strip()
    if text.startswith('refused: '):
        text = text[len('refused: '):]
    if success:
        line = f'reset granted: {text}'
    elif text.startswith('reset '):
        line = f'reset partly granted: cleared {text[len("reset "):]}'
    else:
        line = f'reset refused: {text}'
    if still_latched and 'still latched' not in text:
        line += f' (still latched: {", ".join(still_latched)})'
    return line

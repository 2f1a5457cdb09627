"""Protection: limits at three levels, debounced checks, latched trips (reports, never acts)."""
from ..measurement import Measurement
from .checks import Event, Protection, ResetResult, Status
from .latch import CORRUPT_ID, LatchedTrip, TripLatch
from .limits import (
                     CATALOG,
                     LEVEL_ALARM,
                     LEVEL_NAMES,
                     LEVEL_OK,
                     LEVEL_TRIP,
                     LEVEL_WARNING,
                     ProtectionConfig,
                     load_protection_config,
)

__all__ = ['CATALOG', 'CORRUPT_ID', 'Event', 'LEVEL_ALARM', 'LEVEL_NAMES', 'LEVEL_OK',
           'LEVEL_TRIP', 'LEVEL_WARNING', 'LatchedTrip', 'Measurement', 'Protection',
           'ProtectionConfig', 'ResetResult', 'Status', 'TripLatch', 'load_protection_config']

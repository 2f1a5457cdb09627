"""Fleet analysis: bags replayed offline, per-pack trends and fault detection."""

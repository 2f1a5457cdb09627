"""Robot mission current profiles for the estimator validation matrix (numpy only).

A mobile robot's day is not a car's: long stretches of standby (computers, sensors, a few
percent of 1 C), driving at a modest current between stations, and short peaks (lifting a
load, climbing a ramp, starting a manipulator) of 1-2 C for a few seconds, sometimes followed
by a little regeneration (lowering the load, braking). A seeded generator strings phases:

* ``idle``: 0.02-0.06 C with a slow +-15 % wobble, 5-25 min (the long low-current stretches in
  which a rest detector at 0.02 C must *not* fire, and in which an OCV anchor would be wrong);
* ``travel``: 0.15-0.45 C for 1-6 min, speed changes every 20-60 s, brief regeneration of
  0.05-0.2 C when it slows down;
* ``task``: 2-6 peaks of 1.0-2.0 C lasting 4-12 s each, 5-30 s apart at idle current, each
  peak followed by 4-8 s of 0.1-0.3 C regeneration with probability 0.4.

Knots every ``dt_s`` (the simulator interpolates linearly between them and the recording is
sampled on the same knots, so counting charge from the samples has no aliasing error).
Current sign: + = charging.
"""
import numpy as np

IDLE_C = (0.02, 0.06)
IDLE_S = (300.0, 1500.0)
TRAVEL_C = (0.15, 0.45)
TRAVEL_S = (60.0, 360.0)
PEAK_C = (1.0, 2.0)
PEAK_S = (4.0, 12.0)
PEAKS_PER_TASK = (2, 7)
REGEN_C = (0.1, 0.3)


def _idle(rng, dt_s):
    n = int(rng.uniform(*IDLE_S) / dt_s)
    level = rng.uniform(*IDLE_C)
    wobble = 1.0 + 0.15 * np.sin(np.linspace(0.0, rng.uniform(2, 8) * np.pi, n)
                                 + rng.uniform(0, np.pi))
    return -level * wobble


def _travel(rng, dt_s):
    n = int(rng.uniform(*TRAVEL_S) / dt_s)
    out = np.empty(n)
    k = 0
    while k < n:
        m = max(1, int(rng.uniform(20.0, 60.0) / dt_s))
        out[k:k + m] = -rng.uniform(*TRAVEL_C)
        k += m
        if rng.random() < 0.3 and k < n:        # slowing down: a little regeneration
            r = max(1, int(rng.uniform(4.0, 10.0) / dt_s))
            out[k:k + r] = rng.uniform(0.05, 0.2)
            k += r
    return out[:n]


def _task(rng, dt_s):
    pieces = []
    idle = rng.uniform(*IDLE_C)
    for _ in range(rng.integers(*PEAKS_PER_TASK)):
        pieces.append(np.full(max(1, int(rng.uniform(5.0, 30.0) / dt_s)), -idle))
        pieces.append(np.full(max(1, int(round(rng.uniform(*PEAK_S) / dt_s))),
                              -rng.uniform(*PEAK_C)))
        if rng.random() < 0.4:
            pieces.append(np.full(max(1, int(rng.uniform(4.0, 8.0) / dt_s)),
                                  rng.uniform(*REGEN_C)))
    return np.concatenate(pieces)


def current_profile(capacity_ah, seed, duration_s, dt_s=4.0, discharge_max_a=np.inf,
                    charge_max_a=np.inf):
    """Cell current in A (+ = charging) every ``dt_s`` for ``duration_s`` of robot mission.

    Starts and ends with an idle phase; peaks are clipped at the cell's limits.
    """
    rng = np.random.default_rng(seed)
    pieces = [_idle(rng, dt_s)]
    while sum(len(p) for p in pieces) * dt_s < duration_s:
        kind = rng.choice(('idle', 'travel', 'task'), p=(0.3, 0.4, 0.3))
        pieces.append({'idle': _idle, 'travel': _travel, 'task': _task}[kind](rng, dt_s))
    pieces.append(_idle(rng, dt_s))
    c_rate = np.concatenate(pieces)[:int(duration_s / dt_s)]
    return np.clip(c_rate * capacity_ah, -discharge_max_a, charge_max_a)

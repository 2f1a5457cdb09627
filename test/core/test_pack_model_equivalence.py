"""The simulated pack's cheap tick (issue 18 item 8) is bit-identical to the code before it.

The reference below is the pack model's step and readings and the pack encoder's frame
encoding as they were before (copied here, not in core); the new code and the reference run
side by side on both shipped profiles through every fault, frame fault, the charger (CC, CV,
done), bleeding, contactor sequences and the command timeouts, and every tick's model state,
measurement, frames (id and bytes) and ground truth must be equal bit for bit.
"""
import dataclasses
import math
import os
import struct

import can
import numpy as np
import pytest

from bms_ros.core import ageing
from bms_ros.core.can_bus import load_can_settings
from bms_ros.core.can_codec import CanProtocol, PackEncoder
from bms_ros.core.can_devices import CanDevice
from bms_ros.core.can_mapping import MEASUREMENT_FIELDS
from bms_ros.core.errors import EncodeError
from bms_ros.core.pack_model import CommandWatchdog, PackModel, SimulatorConfig
from bms_ros.core.pack_model.config import ChargerConfig
from bms_ros.core.profile import Profile, config_dir
from bms_ros.core.sim_frame_faults import FrameFaults

PROFILES = os.path.join(config_dir(), 'profiles')

# ---------------------------------------------------------------- reference (the old code)


class ReferenceModel(PackModel):
    """PackModel with the step, R0, OCV, thermal step, sensors and readings of before."""

    def step(self):
        dt = self.step_s
        self._contactors.update(self.sim_time_s, self.faults.contactor_welded,
                                self.faults.contactor_stuck_open)
        negative, positive, _ = self._contactors.actual
        demand = self.demand_a(self.sim_time_s)
        self.demand_current_a = demand
        temperatures = self.temperatures_degc
        r0 = self._r0(temperatures)
        bleed_a = np.where(self.bleed, self.cell_voltages_v / self.config.bleed_resistance_ohm,
                           0.0)
        source_v = float(np.sum(self.ocv_v + self.rc_v))
        i_pack = self._link_step(demand, source_v, r0, dt)
        i_cell = i_pack - bleed_a - self.self_discharge_a
        rc = self.rc_v * self._rc_decay + self.r1_ohm * (1.0 - self._rc_decay) * i_cell
        self.rc_v = rc
        self.soc = np.clip(self.soc + i_cell * self._ah_per_as, 0.0, 1.0)
        self._thermal_step(i_cell, rc, r0, bleed_a, temperatures)
        self.ocv_v = self._ocv(self.soc, self.temperatures_degc)
        self.r0_ohm = r0
        self.cell_current_a = i_cell
        self.bleed_current_a = bleed_a
        self.cell_voltages_v = self.ocv_v + i_cell * r0 + rc
        self.pack_voltage_v = float(np.sum(self.cell_voltages_v))
        self.pack_current_a = i_pack
        if negative and positive:
            self.link_voltage_v = self.pack_voltage_v
        self.sim_time_s += dt

    def _link_step(self, demand, source_v, r0, dt):
        cfg = self.config
        negative, positive, precharge = self._contactors.actual
        r_short = self.faults.short_resistance_ohm
        c_link = cfg.link_capacitance_f
        if negative and positive:
            if math.isfinite(r_short):
                # the shorted load in parallel with the demand: V = E + I R, I = I_d - V / R_s
                r_pack = float(np.sum(r0))
                v_pack = (source_v + demand * r_pack) / (1.0 + r_pack / r_short)
                return demand - v_pack / r_short
            return demand
        # link RC circuit, exact: dV/dt = (a - b V), settling to a / b
        b = 1.0 / (cfg.link_discharge_resistance_ohm * c_link)
        if math.isfinite(r_short):
            b += 1.0 / (r_short * c_link)
        a = 0.0
        if negative and precharge:
            g_pre = 1.0 / (cfg.precharge_resistance_ohm * c_link)
            a = source_v * g_pre
            b += g_pre
        v_old = self.link_voltage_v
        v_inf = a / b
        self.link_voltage_v = v_inf + (v_old - v_inf) * math.exp(-b * dt)
        i_pack = 0.0
        if negative and precharge:
            # mean pre-charge current over the step, discharging the pack
            v_mid = 0.5 * (v_old + self.link_voltage_v)
            i_pack = -(source_v - v_mid) / cfg.precharge_resistance_ohm
        return i_pack

    def _r0(self, temperatures_degc):
        return self.cell.r0_at(temperatures_degc) * self.r0_factor

    def _ocv(self, soc, temperatures_degc):
        return self.cell.ocv.ocv(soc, temperatures_degc)

    def _thermal_step(self, i_cell, rc, r0, bleed_a, temperatures):
        heat_w = i_cell * i_cell * r0 + rc * rc / self.r1_ohm + bleed_a * bleed_a \
            * self.config.bleed_resistance_ohm + self.faults.thermal_event_w
        drive_w = heat_w + self.cooling_w_per_k * self.ambient_degc
        if self._g_nb > 0.0:
            around = np.zeros(self.cells)
            around[1:] += temperatures[:-1]
            around[:-1] += temperatures[1:]
            drive_w += self._g_nb * around
        t_inf = drive_w / self._g_total
        self.temperatures_degc = t_inf + (temperatures - t_inf) * self._thermal_decay

    def sensor_temperatures_degc(self):
        sums = np.bincount(self._sensor_of_cell, weights=self.temperatures_degc,
                           minlength=self.sensors)
        counts = self._cells_per_sensor
        return np.where(counts > 0, sums / np.maximum(counts, 1),
                        self.temperatures_degc[self._sensor_fallback])

    def measured(self, fields=None):
        noise = self.config.noise
        rng = self._noise_rng
        faults = self.faults
        cells = self.cell_voltages_v + noise.cell_voltage_v * rng.standard_normal(self.cells)
        stuck = faults.stuck_cell_voltage_v
        cells = np.where(np.isfinite(stuck), stuck, cells)
        cells[faults.open_wire] = np.nan
        temps = self.sensor_temperatures_degc() + noise.temperature_degc * rng.standard_normal(
            self.sensors)
        temps[faults.temperature_dropout] = np.nan
        return {
            'cell_voltages_v': cells,
            'temperatures_degc': temps,
            'pack_current_a': self.pack_current_a + faults.current_offset_a
            + noise.current_a * float(rng.standard_normal()),
            'pack_voltage_v': max(0.0, self.pack_voltage_v
                                  + noise.pack_voltage_v * float(rng.standard_normal())),
            'link_voltage_v': max(0.0, self.link_voltage_v
                                  + noise.link_voltage_v * float(rng.standard_normal())),
            'negative_contactor_closed': self.negative_contactor_closed,
            'positive_contactor_closed': self.positive_contactor_closed,
            'precharge_relay_closed': self.precharge_relay_closed,
            'cell_balancing': self.bleed.copy(),
        }


_NAN = float('nan')


def _raw_of_value(s, value):
    if value is None or not math.isfinite(value):
        return s.invalid_raw if s.invalid_raw is not None else max(s.type_min, min(0, s.type_max))
    raw = round((value - s.bias) / s.gain)
    raw = max(s.type_min, min(s.type_max, raw))
    if raw == s.invalid_raw:
        raw = raw - 1 if raw == s.type_max else raw + 1
    return raw


def _raw_of_bool(s, value):
    one_is_true = (s.gain + s.bias) >= 0.5
    return 1 if bool(value) == one_is_true else 0


def _encode_frame(mm, fields, mux, counter_value, other_muxes=None):
    raw = dict.fromkeys(mm.other_signals, 0)
    if mm.mux_signal is not None:
        raw[mm.mux_signal] = mux
        raw.update(other_muxes or {})
    if mm.counter_signal is not None:
        raw[mm.counter_signal] = counter_value
    for s in mm.signals:
        if s.flag is not None:
            raw[s.flag] = 1 - s.flag_invalid
        if s.error is not None:
            raw[s.error] = 0
    for s in mm.signals:
        value = fields[s.field]
        is_array = np.ndim(value) > 0
        element = mm.element(s, mux)
        n = len(value) if is_array else 1
        if s.bitmask:
            bits = 0
            for k in range(min(s.bits, max(0, n - element))):
                if value[element + k]:
                    bits |= 1 << k
            raw[s.signal] = bits
        elif element >= n:
            raw[s.signal] = 0 if s.is_bool else _raw_of_value(s, _NAN)
        else:
            v = value[element] if is_array else value
            raw[s.signal] = _raw_of_bool(s, v) if s.is_bool else _raw_of_value(s, float(v))
            if not s.is_bool and not math.isfinite(float(v)):
                if s.flag is not None:
                    raw[s.flag] = s.flag_invalid
                if s.error is not None:
                    raw[s.error] |= s.error_mask & -s.error_mask
    data = mm.dbc_message.encode(raw, scaling=False, padding=False, strict=False)
    return can.Message(arbitration_id=mm.frame_id, is_extended_id=mm.is_extended, data=data,
                       dlc=len(data), is_rx=False)


class ReferenceEncoder(PackEncoder):
    """PackEncoder with the frame encoding and scheduling of before."""

    def _frames(self, mm, fields):
        from bms_ros.core.can_encode import _branch_frames
        branches = self._branches.get(mm.name)
        if branches is None:
            branches = self._branches[mm.name] = _branch_frames(mm)
        frames = []
        for mux, other_muxes in branches:
            counter = self._counter.get(mm.name, 0)
            if mm.counter_signal is not None:
                self._counter[mm.name] = (counter + 1) % mm.counter_modulo
            frames.append(_encode_frame(mm, fields, mux, counter, other_muxes))
        return frames

    def state_fields(self, state):
        fields = {}
        for name in self.protocol.mapping.mapped_fields():
            value = state[name]
            n = self.protocol.field_length(name)
            if MEASUREMENT_FIELDS[name][1] is not None:
                value = np.asarray(value)
                assert value.shape == (n,)
            fields[name] = value
        return fields

    def encode_all(self, state, keys=None):
        from bms_ros.core.can_codec import frame_key
        fields = self.state_fields(state)
        frames = []
        for mm in self.protocol.mapping.measurement:
            if keys is None or frame_key(mm.frame_id, mm.is_extended) in keys:
                frames += self._frames(mm, fields)
        self.frames_sent += len(frames)
        return frames

    def due_frames(self, now_s, state):
        due = [mm for mm in self.protocol.mapping.measurement if now_s >= self._next_due[mm.name]]
        if not due:
            return []
        fields = self.state_fields(state)
        frames = []
        for mm in due:
            next_due = self._next_due[mm.name] + mm.period_s
            self._next_due[mm.name] = next_due if next_due > now_s else now_s + mm.period_s
            frames += self._frames(mm, fields)
        self.frames_sent += len(frames)
        return frames

# ---------------------------------------------------------------- the two rigs


class Rig:
    """One simulated pack as the node's tick drives it (bus stubbed): old or new code."""

    def __init__(self, profile, pack, config, reference):
        self.reference = reference
        self.model = (ReferenceModel if reference else PackModel)(pack, config)
        settings = load_can_settings(profile)
        protocol = CanProtocol.from_files(settings.dbc_path, settings.mapping_path,
                                          pack.cells_series, pack.temperature_sensors)
        self.encoder = (ReferenceEncoder if reference else PackEncoder)(protocol)
        self.frame_faults = FrameFaults(protocol)
        self.watchdog = CommandWatchdog(self.model, config.time_scale)

    def tick(self, advance_s):
        """As PackSimulator.on_tick: advance, command timeouts, due frames, frame faults."""
        model = self.model
        if advance_s > 0.0:
            model.advance(advance_s)
        events = self.watchdog.check()

        def measure(fields=None):
            self.measurement = model.measured(fields)
            return self.measurement
        if self.reference:
            frames = self.encoder.due_frames(self.watchdog.bus_time_s, measure())
        else:
            frames = self.encoder.due_frames_measured(self.watchdog.bus_time_s, measure)
        return events, frame_bits(self.frame_faults.apply(frames))


def _bits(value):
    """A value as exact bytes / text (NaN payloads, -0.0 and dtypes included)."""
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return struct.pack('<d', value)
    if isinstance(value, (list, tuple)):
        return tuple(_bits(v) for v in value)
    return (type(value).__name__, repr(value))


STATE = ('soc', 'rc_v', 'ocv_v', 'r0_ohm', 'cell_current_a', 'bleed_current_a',
         'cell_voltages_v', 'temperatures_degc', 'pack_voltage_v', 'pack_current_a',
         'link_voltage_v', 'sim_time_s', 'demand_current_a', 'charger_phase', '_pending_s',
         'bleed', 'capacity_ah', 'r1_ohm')


def snapshot(model):
    """The model's state, exactly."""
    out = {name: _bits(getattr(model, name)) for name in STATE}
    out['contactors'] = _bits(model._contactors.actual + model._contactors.commanded)
    out['truth'] = {k: _bits(v) for k, v in model.truth().items()}
    return out


def frame_bits(frames):
    return [(f.arbitration_id, f.is_extended_id, f.dlc, f.is_rx, bytes(f.data)) for f in frames]


def both(rigs, action):
    """Apply ``action(rig)`` to both rigs; their results (or errors) must be equal."""
    results = []
    for rig in rigs:
        try:
            results.append(('ok', action(rig)))
        except Exception as error:  # noqa: BLE001
            results.append(('error', f'{type(error).__name__}: {error}'))
    assert results[0] == results[1]
    return results[0][1]


def cv_voltage(model, current_a):
    """A charger cell voltage at which the CV current is ``current_a`` now (V)."""
    decay = model._rc_decay
    slope = model.r0_ohm + model.r1_ohm * (1.0 - decay)
    return float(np.max(model.ocv_v + model.rc_v * decay + current_a * slope))


def scenario(n, sensors, capacity_ah):
    """(tick, action) pairs: every fault, frame faults, bleeding, contactors, charger."""
    bleed = np.zeros(n, dtype=bool)
    bleed[[0, 3, n // 2]] = True
    wd = lambda f: lambda rig: f(rig, rig.watchdog)             # noqa: E731
    m = lambda f: lambda rig: f(rig.model)                        # noqa: E731
    ff = lambda f: lambda rig: f(rig.frame_faults)                # noqa: E731
    events = {
        5: [m(lambda x: x.set_ambient(31.0))],
        10: [wd(lambda r, w: w.contactor_command(True, True, False))],
        40: [wd(lambda r, w: w.contactor_command(True, False, True))],
        60: [wd(lambda r, w: w.balancing_command(bleed))],
        100: [m(lambda x: x.set_demand(-1.5 * capacity_ah))],
        150: [m(lambda x: x.set_demand_power(400.0))],
        200: [m(lambda x: x.clear_demand())],
        220: [m(lambda x: x.inject_fault('stuck_cell_voltage', 2, 0.0)),
              m(lambda x: x.inject_fault('stuck_cell_voltage', 6, 3.1)),
              m(lambda x: x.inject_fault('open_wire', 5)),
              m(lambda x: x.inject_fault('temperature_dropout', sensors - 1)),
              m(lambda x: x.inject_fault('current_offset', 0, 0.7)),
              m(lambda x: x.inject_fault('thermal_event', 4, 40.0))],
        260: [ff(lambda f: f.inject('can_silent', 0)), ff(lambda f: f.inject('can_frozen', 2)),
              ff(lambda f: f.inject('can_frozen', 4))],
        300: [ff(lambda f: f.clear('all')), m(lambda x: x.clear_fault('all'))],
        320: [m(lambda x: x.inject_fault('shorted_load', 0, 0.5))],
        340: [m(lambda x: x.clear_fault('shorted_load'))],
        350: [m(lambda x: x.inject_fault('contactor_welded', 1))],
        360: [wd(lambda r, w: w.contactor_command(False, False, False))],
        380: [m(lambda x: x.clear_fault('all')),
              m(lambda x: x.inject_fault('contactor_stuck_open', 0)),
              wd(lambda r, w: w.contactor_command(True, False, True))],
        400: [m(lambda x: x.clear_fault('all')),
              wd(lambda r, w: w.contactor_command(True, False, True)),
              m(lambda x: x.inject_fault('shorted_load', 0, 0.0))],   # then silence: timeout
        480: [m(lambda x: x.clear_fault('all')), ff(lambda f: f.inject('can_frozen', 0))],
        600: [m(lambda x: ageing.set_cell_parameters(x, x.capacity_ah * 0.9, x.r0_factor * 1.2)),
              ff(lambda f: f.clear('can_frozen', -1))],
        # the charger: plugged in with the main contactors closed and a CV voltage 1.5 x its
        # CC current above the highest cell, so that CC, CV and done all happen within the run
        650: [wd(lambda r, w: w.contactor_command(True, False, True)),
              m(lambda x: setattr(x, 'charger', ChargerConfig(
                  current_a=0.3 * capacity_ah, cell_voltage_v=cv_voltage(x, 0.45 * capacity_ah),
                  end_current_a=0.2 * capacity_ah))),
              m(lambda x: x.set_charger(True, 0.5 * capacity_ah))],
        700: [m(lambda x: x.set_charger(True, 0.25 * capacity_ah))],
        900: [m(lambda x: x.set_charger(False))],
    }
    # keep the contactor command alive while the charger runs (else the timeout opens them)
    for k in range(660, 1000, 20):
        events.setdefault(k, []).append(wd(lambda r, w: w.contactor_command(True, False, True)))
    return events


def run_side_by_side(profile_name, ticks=1000, sensors=None):
    profile = Profile(os.path.join(PROFILES, profile_name))
    pack = profile.pack if sensors is None else dataclasses.replace(
        profile.pack, temperature_sensors=sensors)
    config = SimulatorConfig.from_section(profile.section('simulator'), pack)
    # start warmer than ambient so the temperatures (and R0, OCV) move from the first step
    config = dataclasses.replace(config, initial_temperature_degc=config.ambient_degc + 3.0)
    rigs = [Rig(profile, pack, config, reference=True), Rig(profile, pack, config, reference=False)]
    events = scenario(pack.cells_series, pack.temperature_sensors, pack.capacity_ah)
    seen = {'phases': set(), 'messages': set(), 'nan': False, 'frozen': 0, 'silent': 0,
            'events': 0, 'bleeding': False, 'closed': False, 'charge_current': 0.0}
    assert snapshot(rigs[0].model) == snapshot(rigs[1].model)
    for k in range(ticks):
        for action in events.get(k, []):
            both(rigs, action)
        # the pacer's advances: mostly one step, some shorter or longer (jitter, a late tick)
        advance_s = 0.01 * (1.0 + 0.45 * math.sin(1.7 * k)) if k % 7 else 0.01
        if 700 <= k < 900:
            advance_s = 0.5          # the charger's CV: fifty steps a tick
        out = both(rigs, lambda rig, a=advance_s: rig.tick(a))
        events_out, frames = out
        a, b = snapshot(rigs[0].model), snapshot(rigs[1].model)
        assert a == b, f'tick {k}: ' + ', '.join(x for x in a if a[x] != b[x])
        # the readings the new tick asked for are the reference's, bit for bit
        ref_reading, new_reading = rigs[0].measurement, rigs[1].measurement
        assert {'pack_current_a', 'pack_voltage_v', 'link_voltage_v'} <= set(new_reading)
        assert {name: _bits(v) for name, v in new_reading.items()} \
            == {name: _bits(ref_reading[name]) for name in new_reading}
        seen['nan'] |= bool(np.isnan(ref_reading['cell_voltages_v']).any())
        if k % 50 == 25:     # and every reading, when all are asked for
            full = both(rigs, lambda rig: {n: _bits(v) for n, v in rig.model.measured().items()})
            assert list(full) == list(ref_reading)
        model = rigs[1].model
        seen['phases'].add(model.charger_phase)
        seen['messages'].update(f[0] for f in frames)
        seen['events'] += len(events_out)
        seen['bleeding'] |= bool(model.bleed.any())
        seen['closed'] |= model.negative_contactor_closed and model.positive_contactor_closed
        seen['charge_current'] = max(seen['charge_current'], model.pack_current_a)
    ref, new = rigs[0], rigs[1]
    seen['frozen'] = new.frame_faults.frames_repeated
    seen['silent'] = new.frame_faults.frames_suppressed
    assert (ref.frame_faults.frames_repeated, ref.frame_faults.frames_suppressed) \
        == (seen['frozen'], seen['silent'])
    assert ref.encoder.frames_sent == new.encoder.frames_sent
    # the same draws from the noise generator: the next draws are equal too
    assert ref.model._noise_rng.standard_normal(5).tobytes() \
        == new.model._noise_rng.standard_normal(5).tobytes()
    return seen


@pytest.mark.parametrize('profile_name', ['lfp_16s.yaml', 'nmc_96s.yaml'])
def test_tick_is_bit_identical_to_the_reference(profile_name):
    seen = run_side_by_side(profile_name)
    # the run went where it was meant to (else the comparison proves little)
    assert {'CC', 'CV', 'done', 'off'} <= seen['phases']
    assert len(seen['messages']) == 5
    assert seen['frozen'] > 0 and seen['silent'] > 0
    assert seen['events'] >= 2                     # contactor and balancing timeouts
    assert seen['bleeding'] and seen['closed'] and seen['charge_current'] > 0.0 and seen['nan']


def test_more_sensors_than_cells_is_bit_identical():
    seen = run_side_by_side('lfp_16s.yaml', ticks=300, sensors=20)
    assert len(seen['messages']) == 5


# ---------------------------------------------------------------- every mapping's frames

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'can')
SHIPPED = [(os.path.join(config_dir(), 'can', d), os.path.join(config_dir(), 'can', m))
           for d, m in (('bms_ros.dbc', 'bms_ros_mapping.yaml'),
                        ('alt_bms.dbc', 'alt_bms_mapping.yaml'))]


def _fixture(*parts):
    return os.path.join(FIXTURES, *parts)


# name -> (protocol factory, cells, sensors)
PROTOCOLS = {
    'bms_ros': (lambda c, s: CanProtocol.from_files(*SHIPPED[0], c, s), 16, 8),
    'alt_bms': (lambda c, s: CanProtocol.from_files(*SHIPPED[1], c, s), 16, 8),
    'percell_bms': (lambda c, s: CanProtocol.from_files(
        _fixture('percell_bms.dbc'), _fixture('percell_bms_mapping.yaml'), c, s), 12, 6),
    'j1939_bms': (lambda c, s: CanProtocol.from_files(
        _fixture('vendors', 'j1939_bms.dbc'), _fixture('vendors', 'j1939_bms_mapping.yaml'),
        c, s), 16, 8),
    'statereq_bms': (lambda c, s: CanProtocol.from_files(
        _fixture('vendors', 'statereq_bms.dbc'),
        _fixture('vendors', 'statereq_bms_mapping.yaml'), c, s), 16, 8),
    'percell_bms + shunt_ma': (lambda c, s: CanProtocol.from_devices(
        [CanDevice('bms', _fixture('percell_bms.dbc'), _fixture('percell_bms_bus_mapping.yaml')),
         CanDevice('shunt', _fixture('shunt_ma.dbc'), _fixture('shunt_ma_mapping.yaml'))],
        c, s), 12, 6),
}


def random_state(rng, cells, sensors, k):
    """A measurement with NaN, infinities, saturating and negative values now and then."""
    def values(n, lo, hi):
        v = rng.uniform(lo, hi, n)
        if k % 3 == 0:
            v[rng.integers(0, n)] = np.nan
        if k % 5 == 0:
            v[rng.integers(0, n)] = rng.choice([np.inf, -np.inf, 1e9, -1e9, -0.0])
        return v
    return {'cell_voltages_v': values(cells, -1.0, 6.0),
            'temperatures_degc': values(sensors, -80.0, 300.0),
            'pack_current_a': float(values(1, -3000.0, 3000.0)[0]),
            'pack_voltage_v': float(values(1, -10.0, 3000.0)[0]),
            'link_voltage_v': np.float64(values(1, -10.0, 3000.0)[0]),
            'negative_contactor_closed': bool(k % 2), 'positive_contactor_closed': k % 3 == 0,
            'precharge_relay_closed': np.bool_(k % 4 == 1),
            'cell_balancing': rng.uniform(size=cells) > 0.6,
            'charger_present': k % 2 == 0}


@pytest.mark.parametrize('name', sorted(PROTOCOLS))
def test_every_mappings_frames_are_the_references(name):
    factory, cells, sensors = PROTOCOLS[name]
    proto = factory(cells, sensors)
    ref, new = ReferenceEncoder(proto), PackEncoder(proto)
    rng = np.random.default_rng(7)
    for k in range(60):
        state = random_state(rng, cells, sensors, k)
        assert frame_bits(new.encode_all(state)) == frame_bits(ref.encode_all(state))
        now = 0.013 * k
        assert frame_bits(new.due_frames(now, state)) == frame_bits(ref.due_frames(now, state))
    assert new.frames_sent == ref.frames_sent > 0


def test_the_bit_layout_is_used_on_the_shipped_dbcs():
    """The fast packer (not cantools) encodes every frame of both shipped DBCs."""
    for dbc, mapping in SHIPPED:
        proto = CanProtocol.from_files(dbc, mapping, 96, 48)
        encoder = PackEncoder(proto)
        encoder.encode_all(random_state(np.random.default_rng(1), 96, 48, 1))
        plans = [p for ps in encoder._plans.values() for p in ps]
        assert plans and all(p.layout is not None for p in plans)


def test_missing_and_misshapen_fields_still_raise():
    proto = CanProtocol.from_files(*SHIPPED[0], 16, 8)
    state = random_state(np.random.default_rng(1), 16, 8, 1)
    with pytest.raises(EncodeError, match='expected 16 values'):
        PackEncoder(proto).due_frames(0.0, {**state, 'cell_voltages_v': np.zeros(15)})
    with pytest.raises(EncodeError, match='no field'):
        PackEncoder(proto).due_frames(0.0, {k: v for k, v in state.items()
                                            if k != 'pack_current_a'})


def test_a_scalar_field_given_as_a_sequence_takes_the_general_encoder():
    proto = CanProtocol.from_files(*SHIPPED[0], 16, 8)
    state = random_state(np.random.default_rng(2), 16, 8, 2)
    state['pack_current_a'] = [12.5]
    assert frame_bits(PackEncoder(proto).encode_all(state)) \
        == frame_bits(ReferenceEncoder(proto).encode_all(state))

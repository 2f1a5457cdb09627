"""Robot-energy wiring of the state_estimator (bms_ros.core.energy): kept apart so the node's
own file only calls it.

Adds to the node: subscription charger_present (std_msgs/Bool, True = a charger is connected;
older than energy.charger_present_timeout_s = unknown) and the same input from a measurement's
mapped CAN field (PackMeasurement.charger_present while charger_present_valid; the latest of the
two wins), service check_mission (CheckMission),
the energy fields of estimate, and (energy.docking_current_a > 0) dock_battery_state: a copy of
battery_state whose current is at least that while a charger is present (docs/robot_energy.md).
"""
import math

import numpy as np
from std_msgs.msg import Bool

from bms_interfaces.srv import CheckMission
from bms_ros.core import contract
from bms_ros.core.energy.config import EnergyConfig
from bms_ros.core.energy.mission import MissionChecker, path_segment, validate_segments
from bms_ros.core.energy.runtime import SCALAR_FIELDS, EnergyEstimator
from bms_ros.core.estimation import interface
from bms_ros.core.vehicle_load import VehicleConfig
from bms_ros.nodes import qos


class EnergyWiring:
    """Configured before any publisher (ConfigError); wired with :meth:`wire`."""

    def __init__(self, profile, estimator_config):
        pack = profile.pack
        self.config = EnergyConfig.from_section(profile.section('energy'))
        self.vehicle = VehicleConfig.from_section(profile.section('gazebo'), pack)
        self.energy = EnergyEstimator(pack.cell, pack.cells_series, self.config)
        self.checker = MissionChecker(self.energy.model, estimator_config, pack.cell)
        self.node = None
        self.dock_pub = None

    def wire(self, node, battery_type):
        """Subscriptions, service and the optional docking copy on ``node``."""
        self.node = node
        stream = qos.STREAM
        node.create_subscription(Bool, contract.CHARGER_PRESENT, self.on_charger, stream)
        node.create_service(CheckMission, contract.CHECK_MISSION, self.on_check_mission)
        if self.config.docking_current_a > 0.0:
            self.dock_pub = node.create_publisher(battery_type, contract.DOCK_BATTERY_STATE,
                                                 stream)

    def on_charger(self, msg):
        """Record whether a charger is present (std_msgs/Bool) at the node's clock."""
        self.energy.set_charger_present(self.node.now_s(), bool(msg.data))

    def on_measurement(self, t_s, msg):
        """An accepted PackMeasurement at estimator time ``t_s``."""
        if getattr(msg, 'charger_present_valid', False):
            # the driver decoded a fresh charger status: the charger input, as the topic's
            self.energy.set_charger_present(self.node.now_s(), bool(msg.charger_present))
        voltage = float(msg.pack_voltage_v)
        if not math.isfinite(voltage):
            voltage = float(np.nansum(np.asarray(msg.cell_voltages_v, dtype=float)))
        # t_s is the estimator's timeline; the charger input is stamped on the node clock
        self.energy.update(t_s, float(msg.pack_current_a), voltage,
                           charger=self.energy.charger_input(self.node.now_s()))

    def charger_present(self):
        """The charger input for battery_state: True / False, None when absent or stale."""
        return self.energy.charger_input(self.node.now_s())

    def _temperature(self):
        last = self.node.last_measurement
        if last is None:
            return np.full(self.energy.n, np.nan)
        return np.asarray(last[3], dtype=float)

    def _soc_std(self):
        f = getattr(self.node.estimator, 'filter', None)
        std = getattr(f, 'soc_std', None)
        return None if std is None else np.asarray(std, dtype=float)

    def fill_estimate(self, msg, est):
        """Set the energy fields of a BatteryEstimate ``msg`` from Estimate ``est``."""
        out = self.energy.evaluate(est, self._temperature(), self.node.now_s(), self._soc_std())
        for name in SCALAR_FIELDS:
            setattr(msg, name, float(getattr(out, name)))
        msg.cell_remaining_energy_wh = [float(e) for e in out.cell_remaining_energy_wh]
        msg.charger_present = bool(out.charger_present)

    def publish_docking(self, battery_msg):
        """The dock_battery_state copy (when configured)."""
        if self.dock_pub is None:
            return
        present = self.energy.charger_input(self.node.now_s()) is True
        copy = type(battery_msg)()
        for name in battery_msg.get_fields_and_field_types():
            setattr(copy, name, getattr(battery_msg, name))
        copy.current = float(interface.docking_current_a(battery_msg.current, present,
                                                         self.config.docking_current_a))
        self.dock_pub.publish(copy)

    def on_check_mission(self, request, response):
        """CheckMission service: can the pack fly the segments (s, W, + = discharging)?"""
        nan = float('nan')
        try:
            segments = validate_segments(request.segment_duration_s, request.segment_drawn_power_w)
            if request.path_length_m > 0.0:
                segments.append(path_segment(self.vehicle, float(request.path_length_m),
                                             float(request.speed_m_per_s)))
            if not segments:
                raise ValueError('no segments and no path')
            for name in ('return_duration_s', 'return_drawn_power_w'):
                value = float(getattr(request, name))
                if not (math.isfinite(value) and value >= 0.0):
                    raise ValueError(f'{name} must be >= 0, got {value}')
        except ValueError as error:
            response.feasible = False
            response.reason = f'bad request: {error}'
            response.first_failing_segment = -1
            for name in ('failing_time_s', 'energy_needed_wh', 'energy_available_wh',
                         'reserve_wh', 'margin_wh', 'margin_percent', 'duration_s',
                         'safe_return_s'):
                setattr(response, name, nan)
            return response
        est = self.node.estimator.estimate()
        result = self.checker.check(est, self._temperature(), segments,
                                    float(request.return_duration_s),
                                    float(request.return_drawn_power_w))
        for name in ('feasible', 'reason', 'first_failing_segment'):
            setattr(response, name, getattr(result, name))
        for name in ('failing_time_s', 'energy_needed_wh', 'energy_available_wh', 'reserve_wh',
                     'margin_wh', 'margin_percent', 'duration_s', 'safe_return_s'):
            setattr(response, name, float(getattr(result, name)))
        self.node.get_logger().info(f'check_mission: {result.reason}, margin '
                                    f'{result.margin_wh:.1f} Wh')
        return response

"""bms-report: PNG plots of a recorded bag (current, voltage, SoC, cells, temperatures, pack
state and contactors, protection events).

    bms-report BAG [--out DIR] [--namespace NS] [--profile P]
    python -m bms_ros.tools.report BAG [--out DIR]

``report_data`` reads the bag into plain arrays (pure, tested against the bag's values);
``render`` draws them with matplotlib's Agg backend, one PNG per panel plus an overview, each
series in a fixed colour (``COLORS``) so a test can find its pixels. The protection panel has
one row per limit, index and level (a warning, an alarm and a trip raised together never
paint over each other); an event raised before the bag started (a latched trip the recorder
received from transient-local history) is drawn from the bag's start. The voltage, cell and
temperature panels carry the profile's warning / alarm / trip levels as dashed lines.
"""
import argparse
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from bms_ros.core import contract
from bms_ros.core.bag_schema import BagError
from bms_ros.core.stamps import message_time_ns

# Fixed, distinct colours (RGB hex) per series: the plots' legend and the tests' pixel probes.
COLORS = {
    'current': '#1f4fd8',          # blue
    'voltage': '#7b1fa2',          # purple
    'soc_estimate': '#e65100',     # orange
    'soc_truth': '#2e7d32',        # green
    'cell_max': '#d50000',         # red
    'cell_mean': '#212121',        # near black
    'cell_min': '#0091ea',         # light blue
    'temperature_max': '#c51162',  # magenta
    'temperature_mean': '#6d4c41',  # brown
    'temperature_min': '#00bfa5',  # teal
    'warning': '#fbc02d',          # yellow
    'alarm': '#ff6d00',            # orange
    'trip': '#b71c1c',             # dark red
    'state': '#37474f',            # blue grey
    'negative': '#283593',         # indigo
    'positive': '#c62828',         # red
    'precharge': '#ef6c00',        # orange
}
LEVEL_NAMES = {level: name for level, name in contract.LEVEL_NAMES.items()
               if level != contract.LEVEL_OK}
PANELS = ('current', 'voltage', 'soc', 'cell_voltages', 'temperatures', 'pack_state', 'trips')
STATE_NAMES = ('OFF', 'STANDBY', 'PRECHARGE', 'DRIVE', 'CHARGE', 'ERROR')
CONTACTORS = contract.CONTACTORS   # rows of the pack state panel, from the top
# panel -> the protection limits drawn on it as dashed lines (the profile's levels)
LIMIT_LINES = {
    'voltage': ('pack_overvoltage', 'pack_undervoltage'),
    'cell_voltages': ('cell_overvoltage', 'cell_undervoltage'),
    'temperatures': ('discharge_overtemperature', 'discharge_undertemperature'),
}


@dataclass
class Interval:
    """One protection event from raise to clear (or to the end of the bag if still active)."""

    limit_id: str
    index: int
    level: int
    start_s: float
    end_s: float
    cleared: bool
    value: float
    threshold: float
    unit: str
    before_start: bool = False     # raised before the bag started: drawn from its start


@dataclass
class ReportData:
    """Everything the plots show, as arrays of seconds since the bag's start and values."""

    bag: str
    t0_ns: int
    measurement_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pack_current_a: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pack_voltage_v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cell_voltage_min_v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cell_voltage_max_v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cell_voltage_mean_v: np.ndarray = field(default_factory=lambda: np.zeros(0))
    temperature_min_degc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    temperature_max_degc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    temperature_mean_degc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    soc_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    soc: np.ndarray = field(default_factory=lambda: np.zeros(0))          # 0..1
    soc_source: str = ''                                        # estimate / battery_state
    truth_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    truth_soc: np.ndarray = field(default_factory=lambda: np.zeros(0))     # 0..1
    events: list = field(default_factory=list)                             # [Interval]
    end_s: float = 0.0
    state_t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    state: np.ndarray = field(default_factory=lambda: np.zeros(0))        # PackState.state
    contactors: dict = field(default_factory=dict)    # name -> bool array at measurement_t_s
    limits: dict = field(default_factory=dict)        # panel -> [(limit_id, level, value)]


def _stamp_s(msg, t_ns, t0_ns):
    """Seconds since ``t0_ns`` of a message: its header stamp, else its bag timestamp."""
    return (message_time_ns(msg, t_ns) - t0_ns) * 1e-9


def _reduce(rows, valid_rows, reducer):
    """Per-message reduction over valid finite entries; NaN where none is valid."""
    out = np.full(len(rows), np.nan)
    for k, (row, valid) in enumerate(zip(rows, valid_rows)):
        values = np.asarray(row, dtype=float)
        ok = np.isfinite(values)
        if valid is not None and len(valid) == len(values):
            ok &= np.asarray(valid, dtype=bool)
        if ok.any():
            out[k] = reducer(values[ok])
    return out


def truth_pack_soc(cell_soc, cell_capacity_ah):
    """Pack SoC of the simulated truth, by the estimator's definition (0..1)."""
    from bms_ros.core.estimation.estimator import pack_soc
    return pack_soc(cell_soc, cell_capacity_ah)[0]


def profile_limits(profile_path):
    """{panel: [(limit_id, level, threshold)]} of LIMIT_LINES from a profile's protection."""
    from bms_ros.core.profile import Profile
    from bms_ros.core.protection import load_protection_config
    profile = Profile(profile_path)
    config = load_protection_config(profile.section('protection'), profile.pack)
    out = {}
    for panel, limit_ids in LIMIT_LINES.items():
        out[panel] = [(limit_id, int(level), float(value))
                      for limit_id in limit_ids
                      for level, value in zip(config.limit(limit_id).levels,
                                              config.limit(limit_id).thresholds)]
    return out


def report_data(bag_path, namespace=None, profile=None):
    """Read a bag into a ReportData (pure: no ROS graph, no plotting); ``profile``: a profile
    path whose protection levels become the limit lines (None: no lines).
    """
    from bms_ros.tools.bag.bagio import Bag

    with Bag(bag_path) as bag:
        t0 = bag.start_ns
        data = ReportData(bag=str(bag_path), t0_ns=t0, end_s=(bag.end_ns - t0) * 1e-9)
        meas = bag.read('measurement', namespace)
        if meas:
            msgs = [m for _, m in meas]
            data.measurement_t_s = np.array([_stamp_s(m, t, t0) for t, m in meas])
            data.pack_current_a = np.array([m.pack_current_a for m in msgs], dtype=float)
            data.pack_voltage_v = np.array([m.pack_voltage_v for m in msgs], dtype=float)
            cells = [m.cell_voltages_v for m in msgs]
            cell_ok = [m.cell_voltage_valid for m in msgs]
            data.cell_voltage_min_v = _reduce(cells, cell_ok, np.min)
            data.cell_voltage_max_v = _reduce(cells, cell_ok, np.max)
            data.cell_voltage_mean_v = _reduce(cells, cell_ok, np.mean)
            temps = [m.temperatures_degc for m in msgs]
            temp_ok = [m.temperature_valid for m in msgs]
            data.temperature_min_degc = _reduce(temps, temp_ok, np.min)
            data.temperature_max_degc = _reduce(temps, temp_ok, np.max)
            data.temperature_mean_degc = _reduce(temps, temp_ok, np.mean)
            data.contactors = {
                'negative': np.array([m.negative_contactor_closed for m in msgs], dtype=bool),
                'positive': np.array([m.positive_contactor_closed for m in msgs], dtype=bool),
                'precharge': np.array([m.precharge_relay_closed for m in msgs], dtype=bool)}
        states = bag.read('pack_state', namespace)
        if states:
            data.state_t_s = np.array([_stamp_s(m, t, t0) for t, m in states])
            data.state = np.array([m.state for _, m in states], dtype=float)
        estimates = bag.read('estimate', namespace)
        if estimates:
            data.soc_source = 'estimate'
            data.soc_t_s = np.array([_stamp_s(m, t, t0) for t, m in estimates])
            data.soc = np.array([m.pack_soc for _, m in estimates], dtype=float)
        else:
            states = bag.read('battery_state', namespace)
            if states:
                data.soc_source = 'battery_state'
                data.soc_t_s = np.array([_stamp_s(m, t, t0) for t, m in states])
                data.soc = np.array([m.percentage for _, m in states], dtype=float)
        truths = bag.read('sim_truth', namespace)
        if truths:
            data.truth_t_s = np.array([_stamp_s(m, t, t0) for t, m in truths])
            data.truth_soc = np.array([truth_pack_soc(m.cell_soc, m.cell_capacity_ah)
                                       for _, m in truths], dtype=float)
        data.events = events_to_intervals(
            [(_stamp_s(m, t, t0), m) for t, m in bag.read('trip_event', namespace)], data.end_s)
    if profile is not None:
        data.limits = profile_limits(profile)
    return data


def events_to_intervals(events, end_s):
    """Pair raise/clear ProtectionEvents (by limit, index, level) into Intervals, in time order."""
    open_ = {}
    out = []
    for t_s, msg in sorted(events, key=lambda item: item[0]):
        if msg.level not in LEVEL_NAMES:
            continue
        key = (msg.limit_id, int(msg.index), int(msg.level))
        if msg.active:
            if key not in open_:
                open_[key] = Interval(msg.limit_id, int(msg.index), int(msg.level), t_s, end_s,
                                      False, float(msg.value), float(msg.threshold), msg.unit)
                out.append(open_[key])
        elif key in open_:
            interval = open_.pop(key)
            interval.end_s = t_s
            interval.cleared = True
    # history from before the bag (transient-local): over before it started -> not drawn;
    # still raised when it started (a latched trip) -> from the bag's start
    kept = []
    for interval in out:
        if interval.end_s < 0.0:
            continue
        if interval.start_s < 0.0:
            interval.start_s, interval.before_start = 0.0, True
        kept.append(interval)
    return kept


def event_rows(events):
    """Rows of the protection panel: (limit_id, index, level), one per level, sorted."""
    return sorted({(e.limit_id, e.index, e.level) for e in events})


# ---------------------------------------------------------------------------- rendering

def _axes_pixels(fig, ax):
    """(x0, y0, x1, y1) of the axes' drawing area in PNG pixels (origin top left)."""
    box = ax.get_window_extent()
    height = fig.bbox.height
    return (int(np.ceil(box.x0)), int(np.ceil(height - box.y1)), int(np.floor(box.x1)),
            int(np.floor(height - box.y0)))


def _draw(panel, ax, data):
    """Draw one panel on ``ax``; returns {series name: (x, y)} of the lines drawn."""
    drawn = {}

    def line(name, x, y, label, **kw):
        if len(x):
            ax.plot(x, y, color=COLORS[name], label=label, linewidth=1.6, **kw)
            drawn[name] = (np.asarray(x), np.asarray(y))

    t = data.measurement_t_s
    if panel == 'current':
        line('current', t, data.pack_current_a, 'pack current (+ = charging)')
        ax.axhline(0.0, color='#9e9e9e', linewidth=0.6)
        ax.set_ylabel('current (A)')
    elif panel == 'voltage':
        line('voltage', t, data.pack_voltage_v, 'pack voltage')
        ax.set_ylabel('voltage (V)')
    elif panel == 'soc':
        line('soc_estimate', data.soc_t_s, 100.0 * data.soc, f'SoC ({data.soc_source})')
        line('soc_truth', data.truth_t_s, 100.0 * data.truth_soc, 'SoC (simulator truth)',
             linestyle='--')
        ax.set_ylabel('SoC (%)')
    elif panel == 'cell_voltages':
        line('cell_max', t, data.cell_voltage_max_v, 'max cell')
        line('cell_mean', t, data.cell_voltage_mean_v, 'mean cell')
        line('cell_min', t, data.cell_voltage_min_v, 'min cell')
        if len(t):
            ax.fill_between(t, data.cell_voltage_min_v, data.cell_voltage_max_v,
                            color='#bdbdbd', alpha=0.3, linewidth=0)
        ax.set_ylabel('cell voltage (V)')
    elif panel == 'temperatures':
        line('temperature_max', t, data.temperature_max_degc, 'max sensor')
        line('temperature_mean', t, data.temperature_mean_degc, 'mean sensor')
        line('temperature_min', t, data.temperature_min_degc, 'min sensor')
        ax.set_ylabel('temperature (degC)')
    if panel in LIMIT_LINES and data.limits.get(panel) and drawn:
        _limit_lines(ax, data.limits[panel], drawn)
    elif panel == 'pack_state':
        if len(data.state_t_s):
            x = np.append(data.state_t_s, max(data.end_s, data.state_t_s[-1]))
            y = np.append(data.state, data.state[-1])
            ax.step(x, y, where='post', color=COLORS['state'], linewidth=1.6, label='state')
            drawn['state'] = (x, y)
        for k, name in enumerate(CONTACTORS):
            closed = data.contactors.get(name)
            if closed is None or not len(t):
                continue
            row = -1.0 - k              # below OFF: one row per contactor, closed spans
            spans = _spans(t, closed, data.end_s)
            if spans:
                ax.broken_barh(spans, (row - 0.3, 0.6), color=COLORS[name])
            drawn[name] = (np.array([a for a, _ in spans]), np.full(len(spans), row))
        ax.set_yticks([-3.0, -2.0, -1.0] + list(range(len(STATE_NAMES))))
        ax.set_yticklabels([f'{n} closed' for n in reversed(CONTACTORS)] + list(STATE_NAMES),
                           fontsize=7)
        ax.set_ylim(-3.6, len(STATE_NAMES) - 0.4)
        ax.set_xlim(0.0, max(data.end_s, 1e-3))
        ax.set_ylabel('state, contactors')
    elif panel == 'trips':
        rows = event_rows(data.events)
        for e in data.events:
            k = rows.index((e.limit_id, e.index, e.level))
            name = LEVEL_NAMES[e.level]
            width = max(e.end_s - e.start_s, 1e-3 * max(data.end_s, 1.0))
            ax.broken_barh([(e.start_s, width)], (k - 0.35, 0.7), color=COLORS[name])
            drawn.setdefault(name, ([], []))
            drawn[name][0].append(e.start_s)
            drawn[name][1].append(k)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([(f'{lid}[{i}]' if i >= 0 else lid) + f' {LEVEL_NAMES[level]}'
                            + (' (before start)' if any(
                                e.before_start and (e.limit_id, e.index, e.level) ==
                                (lid, i, level) for e in data.events) else '')
                            for lid, i, level in rows], fontsize=7)
        ax.set_ylim(-0.8, max(len(rows), 1) - 0.2)
        ax.set_xlim(0.0, max(data.end_s, 1e-3))
        handles = [_patch(COLORS[n], n) for n in ('warning', 'alarm', 'trip')
                   if n in drawn]
        if handles:
            ax.legend(handles=handles, loc='upper left', fontsize=7)
        if not rows:
            ax.text(0.5, 0.5, 'no protection events', ha='center', va='center',
                    transform=ax.transAxes, color='#616161')
        ax.set_ylabel('protection events')
    if panel not in ('trips', 'pack_state') and drawn:
        ax.legend(loc='best', fontsize=7)
    if panel == 'pack_state' and drawn:
        ax.legend(handles=[_patch(COLORS[n], n) for n in ('state', *CONTACTORS) if n in drawn],
                  loc='upper left', fontsize=7)
    if panel != 'trips' and not drawn:
        ax.text(0.5, 0.5, 'not recorded', ha='center', va='center', transform=ax.transAxes,
                color='#616161')
    ax.grid(True, color='#eeeeee', linewidth=0.5)
    return drawn


def _spans(t, closed, end_s):
    """(start, width) of the runs where ``closed`` is true, sampled at times ``t`` (s)."""
    spans = []
    start = None
    for k, on in enumerate(closed):
        if on and start is None:
            start = t[k]
        elif not on and start is not None:
            spans.append((start, t[k] - start))
            start = None
    if start is not None:
        spans.append((start, max(end_s, t[-1]) - start))
    return spans


def _limit_lines(ax, limits, drawn):
    """Dashed lines at the limits' levels; the y range keeps the data and each limit's first
    level (warning) in view. Adds drawn['limits'] = [(limit_id, level, value)].
    """
    lows, highs = [], []
    for _, (_x, y) in drawn.items():
        finite = np.asarray(y, dtype=float)[np.isfinite(np.asarray(y, dtype=float))]
        if finite.size:
            lows.append(finite.min())
            highs.append(finite.max())
    if not lows:
        return
    low, high = min(lows), max(highs)
    shown = []
    for limit_id, level, value in limits:
        first = min(lv for lid, lv, _ in limits if lid == limit_id)
        if level == first:
            low, high = min(low, value), max(high, value)
    margin = 0.05 * max(high - low, 1e-6)
    labelled = set()
    for limit_id, level, value in limits:
        name = LEVEL_NAMES[level]
        ax.axhline(value, color=COLORS[name], linestyle='--', linewidth=1.0,
                   label=None if name in labelled else f'{name} level (profile)')
        labelled.add(name)
        shown.append((limit_id, level, value))
    ax.set_ylim(low - margin, high + margin)
    drawn['limits'] = shown


def _patch(color, label):
    from matplotlib.patches import Patch
    return Patch(color=color, label=label)


def render(data, out_dir, dpi=100):
    """Write one PNG per panel and overview.png to ``out_dir``.

    Returns {panel: {'path', 'axes_px' (x0, y0, x1, y1), 'xlim', 'ylim',
    'series' {name: (x, y)}}}: enough to map a data point to its pixel in the PNG.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.figure import Figure

    os.makedirs(out_dir, exist_ok=True)
    out = {}
    title = os.path.basename(os.path.normpath(data.bag))
    for panel in PANELS:
        fig = Figure(figsize=(8, 3.2), dpi=dpi)
        ax = fig.add_subplot(1, 1, 1)
        series = _draw(panel, ax, data)
        ax.set_xlabel('time since start of bag (s)')
        ax.set_title(f'{title}: {panel.replace("_", " ")}', fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, f'{panel}.png')
        fig.savefig(path, dpi=dpi)
        out[panel] = {'path': path, 'axes_px': _axes_pixels(fig, ax), 'series': series,
                      'xlim': ax.get_xlim(), 'ylim': ax.get_ylim()}
    fig = Figure(figsize=(9, 2.2 * len(PANELS)), dpi=dpi)
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    for panel, ax in zip(PANELS, axes):
        _draw(panel, ax, data)
    axes[-1].set_xlabel('time since start of bag (s)')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = os.path.join(out_dir, 'overview.png')
    fig.savefig(path, dpi=dpi)
    out['overview'] = {'path': path, 'axes_px': None, 'series': {}, 'xlim': None,
                       'ylim': None}
    return out


def summary_lines(data):
    """A few text lines: duration, current and voltage ranges, SoC start/end, events."""
    lines = [f'bag {data.bag}: {data.end_s:.1f} s, {len(data.measurement_t_s)} measurements']
    if len(data.pack_current_a):
        lines.append(f'current {np.nanmin(data.pack_current_a):.1f}..'
                     f'{np.nanmax(data.pack_current_a):.1f} A, pack voltage '
                     f'{np.nanmin(data.pack_voltage_v):.2f}..'
                     f'{np.nanmax(data.pack_voltage_v):.2f} V')
    if len(data.soc):
        lines.append(f'SoC ({data.soc_source}) {100 * data.soc[0]:.1f} % -> '
                     f'{100 * data.soc[-1]:.1f} %')
    for e in data.events:
        when = 'before the bag started' if e.before_start else f'at {e.start_s:.2f} s'
        lines.append(f'{LEVEL_NAMES[e.level]} {e.limit_id}[{e.index}] {when}'
                     + (f', cleared at {e.end_s:.2f} s' if e.cleared else ', still active'))
    return lines


def main(argv=None):
    """Entry point (bms-report); exit code 0 ok, 2 bad bag or arguments."""
    parser = argparse.ArgumentParser(prog='bms-report', description=__doc__.split('\n')[0])
    parser.add_argument('bag', help='bag folder (metadata.yaml + .mcap) or .mcap file')
    parser.add_argument('--out', default=None, help='output folder (default: <bag>_report)')
    parser.add_argument('--namespace', default=None, help='pack namespace if several in the bag')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument('--profile', default=None,
                        help='profile whose protection levels are drawn as limit lines '
                             '(default: the shipped LFP profile; "none": no lines)')
    args = parser.parse_args(argv)
    out = args.out or os.path.normpath(args.bag).rstrip(os.sep) + '_report'
    from bms_ros.core.errors import ConfigError
    from bms_ros.core.profile import default_profile_path
    profile = None if args.profile == 'none' else (args.profile or default_profile_path())
    try:
        data = report_data(args.bag, args.namespace, profile)
    except (BagError, ConfigError) as error:
        print(f'bms-report: {error}', file=sys.stderr)
        return 2
    if not len(data.measurement_t_s) and not len(data.soc) and not data.events:
        print(f'bms-report: {args.bag}: no measurement, estimate or trip_event messages',
              file=sys.stderr)
        return 2
    result = render(data, out, dpi=args.dpi)
    print('\n'.join(summary_lines(data)))
    for info in result.values():
        print(f'wrote {info["path"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

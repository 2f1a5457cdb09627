"""Single entry point of the benchmarks: runs every bench/<topic>.py and prints one table.

    make bench                      # or: .venv/bin/python -m bench.run [topic ...]

Each module exposes run() -> list of rows {'benchmark', 'value', 'unit', 'goal', 'note'}.
Speed and memory goals live here, never in timed test assertions.
"""
import importlib
import os
import platform
import sys
import time
import traceback

TOPICS = ('can_decode', 'can_vendor_layouts', 'pack_model', 'estimation', 'trip_latency',
          'supervisor', 'fault_latency', 'replay', 'memory', 'soak', 'estimation_matrix',
          'estimation_hysteresis', 'energy', 'fleet', 'pack_control')


def machine():
    import numpy
    cpu = ''
    try:
        with open('/proc/cpuinfo') as stream:
            cpu = next(line.split(':', 1)[1].strip() for line in stream if 'model name' in line)
    except (OSError, StopIteration):
        pass
    return (f'{platform.node()} | {cpu or platform.processor()} | {os.cpu_count()} cores | '
            f'Python {platform.python_version()} | numpy {numpy.__version__}')


def format_table(rows):
    headers = ('benchmark', 'value', 'unit', 'goal', 'note')
    cells = [[str(r.get('benchmark', '')), _fmt(r.get('value')), str(r.get('unit', '')),
              str(r.get('goal', '')), str(r.get('note', ''))] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = ' | '.join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, '-+-'.join('-' * w for w in widths)]
    out += [' | '.join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return '\n'.join(out)


def _fmt(value):
    if isinstance(value, float):
        return f'{value:.4g}' if abs(value) < 1e5 else f'{value:,.0f}'
    return str(value)


def main(argv=None):
    topics = (argv if argv is not None else sys.argv[1:]) or TOPICS
    rows = []
    for topic in topics:
        try:
            module = importlib.import_module(f'bench.{topic}')
        except ModuleNotFoundError as error:
            if error.name == f'bench.{topic}':
                rows.append({'benchmark': topic, 'value': 'n/a', 'note': 'not written yet'})
                continue
            raise
        start = time.monotonic()
        try:
            rows.extend(module.run())
        except Exception as error:  # one failing bench must not hide the others
            traceback.print_exc()
            rows.append({'benchmark': topic, 'value': 'error', 'note': repr(error)[:80]})
        print(f'[bench] {topic}: {time.monotonic() - start:.1f} s', file=sys.stderr)
    print(f'machine: {machine()}')
    print(format_table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())

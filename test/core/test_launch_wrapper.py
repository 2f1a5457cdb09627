"""bms-launch turns systemd's / docker's SIGTERM into the SIGINT ros2 launch needs to stop its
nodes (ros2/launch#666); a stand-in launch records the signal it got.
"""
import os
import signal
import subprocess
import sys
import time

STAND_IN = '''
import signal, sys, time
def on(signum, frame):
    print(f'got {signal.Signals(signum).name}', flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, on)
signal.signal(signal.SIGTERM, on)
print('launched ' + ' '.join(sys.argv[1:]), flush=True)
while True:
    time.sleep(0.05)
'''


def wait_until_caught(pid, signum, timeout_s=10.0):
    """Until process ``pid`` has a handler for ``signum`` (SigCgt in /proc/<pid>/status)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with open(f'/proc/{pid}/status', encoding='ascii') as stream:
            caught = next(int(line.split()[1], 16) for line in stream
                          if line.startswith('SigCgt:'))
        if caught >> (signum - 1) & 1:
            return
        assert time.monotonic() < deadline, f'{pid} catches no {signum!r} after {timeout_s} s'
        time.sleep(0.02)    # poll interval


def test_sigterm_reaches_launch_as_sigint(tmp_path):
    script = tmp_path / 'fake_launch.py'
    script.write_text(STAND_IN)
    wrapper = subprocess.Popen(
        [sys.executable, '-m', 'bms_ros.tools.launch_wrapper', '--command',
         f'{sys.executable} {script}', 'namespace:=pack_a'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = wrapper.stdout.readline()
    assert first.strip() == 'launched namespace:=pack_a'
    wait_until_caught(wrapper.pid, signal.SIGTERM)   # the wrapper sets it after starting launch
    wrapper.send_signal(signal.SIGTERM)
    out, err = wrapper.communicate(timeout=30)
    assert out.strip() == 'got SIGINT'
    assert 'SIGTERM: stopping launch with SIGINT' in err
    assert wrapper.returncode == 0


def test_a_missing_launch_command_is_named(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'bms_ros.tools.launch_wrapper', '--command',
                           os.path.join(str(tmp_path), 'no-ros2')],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 127 and 'is ROS 2 sourced?' in done.stderr

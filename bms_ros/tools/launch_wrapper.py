"""bms-launch: `ros2 launch bms_ros bms.launch.py ARGS` for systemd and docker.

systemd and docker stop a service with SIGTERM; ros2 launch then exits at once and leaves its
nodes running (ros2/launch#666). This wrapper starts ros2 launch as its child and turns a
SIGTERM (or SIGINT, SIGHUP) into one SIGINT for it, the signal launch handles by stopping every
node (SIGINT, then SIGTERM and SIGKILL after its own timeouts), and exits with its code.

    bms-launch profile:=/etc/bms/pack_a.yaml namespace:=pack_a
    bms-launch --command 'ros2 launch my_robot robot.launch.py' -- extra:=args
"""
import argparse
import shlex
import signal
import subprocess
import sys

DEFAULT_COMMAND = 'ros2 launch bms_ros bms.launch.py'


def main(argv=None):
    """The bms-launch command line; the exit code of ros2 launch."""
    parser = argparse.ArgumentParser(prog='bms-launch', description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--command', default=DEFAULT_COMMAND,
                        help=f'the launch command (default: {DEFAULT_COMMAND})')
    parser.add_argument('arguments', nargs=argparse.REMAINDER,
                        help='launch arguments, e.g. profile:=... namespace:=pack_a')
    args = parser.parse_args(argv)
    command = shlex.split(args.command) + [a for a in args.arguments if a != '--']
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f'bms-launch: cannot start {command[0]!r}: {error.strerror} (is ROS 2 sourced?)',
              file=sys.stderr)
        return 127
    forwarded = []

    def forward(signum, frame):
        if not forwarded and child.poll() is None:
            forwarded.append(signum)
            print(f'bms-launch: {signal.Signals(signum).name}: stopping launch with SIGINT',
                  file=sys.stderr, flush=True)
            child.send_signal(signal.SIGINT)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:     # a handler race: keep waiting for the child
            continue
    return 0 if forwarded and code in (0, -signal.SIGINT, 130) else code


if __name__ == '__main__':
    sys.exit(main())

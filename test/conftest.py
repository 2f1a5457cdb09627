"""Test-wide settings: ROS traffic stays on this host, in domains reserved by this test process."""
import fcntl
import os
import tempfile

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')


def _reserve_domain_block():
    """Lock one block of 10 domain ids (10..229) for this process, so concurrent test runs on
    one machine never share a domain; the lock is released when the process exits.
    """
    for block in range(1, 23):
        path = os.path.join(tempfile.gettempdir(), f'bms_ros_test_domain_{block}.lock')
        handle = open(path, 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        globals()['_domain_lock'] = handle  # keep it open for the life of the process
        return block * 10
    raise RuntimeError('no free ROS domain block: too many concurrent test runs')


# an xdist worker inherits its controller's block: it takes one of its own
if 'BMS_TEST_DOMAIN_BLOCK' not in os.environ or os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['BMS_TEST_DOMAIN_BLOCK'] = str(_reserve_domain_block())
os.environ['ROS_DOMAIN_ID'] = os.environ['BMS_TEST_DOMAIN_BLOCK']


ROS_TESTS = os.path.join(os.path.dirname(__file__), 'ros')
# niceness of an xdist worker while it runs a test without nodes: the ROS tests on the other
# worker assert safety bounds in wall-clock time (fail-safe table), so CPU-bound tests yield
_NICE_WITHOUT_NODES = 10
# only where the niceness can be lowered again (root): else a worker that ran a test without
# nodes would run its later ROS tests (and their node processes) niced too
_CAN_RENICE = hasattr(os, 'setpriority') and hasattr(os, 'geteuid') and os.geteuid() == 0


def _starts_nodes(item):
    return item.get_closest_marker('ros') is not None or \
        str(item.path).startswith(ROS_TESTS + os.sep)


def pytest_collection_modifyitems(config, items):
    """Under xdist (`make test` runs `-n 2 --dist loadgroup`) every ROS test goes to one worker,
    one after another as without xdist, while the other worker takes the tests without nodes:
    two suites of nodes at once would only compete for the same two cores.
    """
    import pytest
    for item in items:
        if _starts_nodes(item):
            item.add_marker(pytest.mark.xdist_group('ros'))


def pytest_runtest_setup(item):
    """Under xdist, a test without nodes runs niced (its subprocesses too), a ROS test not."""
    if _CAN_RENICE and os.environ.get('PYTEST_XDIST_WORKER'):
        os.setpriority(os.PRIO_PROCESS, 0, 0 if _starts_nodes(item) else _NICE_WITHOUT_NODES)

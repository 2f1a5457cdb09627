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


if 'BMS_TEST_DOMAIN_BLOCK' not in os.environ:
    os.environ['BMS_TEST_DOMAIN_BLOCK'] = str(_reserve_domain_block())
os.environ['ROS_DOMAIN_ID'] = os.environ['BMS_TEST_DOMAIN_BLOCK']

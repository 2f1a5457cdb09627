import pytest

from .harness import RosTestEnv


@pytest.fixture
def ros_env(tmp_path):
    """A private ROS domain with a probe node; child processes are stopped at the end."""
    env = RosTestEnv(tmp_path)
    try:
        yield env
    finally:
        env.close()

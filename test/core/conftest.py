"""Fixtures shared by the core tests: the LFP cell and the estimator settings its file holds."""
import pytest

from bms_ros.core.cell import CellSpec
from bms_ros.core.profile import config_dir

LFP_CELL = f'{config_dir()}/cells/lfp_a123_anr26650.yaml'


@pytest.fixture(scope='module')
def lfp():
    """The A123 LFP cell of config/cells."""
    return CellSpec.from_file(LFP_CELL)


@pytest.fixture(scope='module')
def lfp_config():
    """The estimator settings of the LFP cell file's `estimator:` section (as estimate_csv)."""
    from bms_ros.tools.estimate_csv import load_config
    config, _ = load_config(cell_path=LFP_CELL)
    return config

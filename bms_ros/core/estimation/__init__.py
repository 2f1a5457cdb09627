"""State estimation: per-cell SoC (EKF), capacity and R0 (SoH), state of power, pack SoC.

Pure numpy, vectorised over cells; no ROS. See docs/estimation.md.
"""
from .config import Derating, EstimatorConfig
from .estimator import Estimate, PackEstimator, pack_soc

__all__ = ['Derating', 'Estimate', 'EstimatorConfig', 'PackEstimator', 'pack_soc']

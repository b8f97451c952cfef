"""Time series: simulated tasks with known salient observations, the GRU black box, and the MIMIC-III reader.

Importing this package registers the offline sources ``sim-spike``, ``sim-state``, ``sim-switch-feature``
and the credentialed, local-path-only ``mimic3-mortality`` in the data registry.
"""

from l6kit.timeseries.mimic import MIMIC_FILE, load_mimic_mortality, mimic_path
from l6kit.timeseries.models import GRUClassifier, model_auroc, predict, train_classifier
from l6kit.timeseries.synthetic import TASKS, TimeSeriesSet, make, narma, spike, state, switch_feature

__all__ = ["GRUClassifier", "MIMIC_FILE", "TASKS", "TimeSeriesSet", "load_mimic_mortality", "make",
           "mimic_path", "model_auroc", "narma", "predict", "spike", "state", "switch_feature",
           "train_classifier"]

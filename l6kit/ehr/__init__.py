"""Electronic health records: PhysioNet-2012 reading and synthetic stays, binned aggregation, DuETT, baselines.

Importing this package registers the data sources ``physionet2012`` (the real download, read from a folder
the user filled) and ``physionet2012-synthetic`` (generated offline).
"""

from l6kit.ehr.aggregate import BinnedStays, EventBinner, static_features
from l6kit.ehr.baselines import GBDTBaseline, LogisticBaseline, binary_metrics
from l6kit.ehr.duett import DuETT, DuETTPretrainer, TensorBatches, attention_maps, predict_proba
from l6kit.ehr.physionet import (
    ParseProblem,
    PhysioNetData,
    PhysioNetFormatError,
    load_physionet2012,
    read_physionet2012,
    read_texts,
    write_physionet,
)
from l6kit.ehr.synthetic import ICUSimulation, simulate_icu_stays, synthetic_physionet2012

__all__ = ["BinnedStays", "DuETT", "DuETTPretrainer", "EventBinner", "GBDTBaseline", "ICUSimulation", "LogisticBaseline",
           "ParseProblem", "PhysioNetData", "PhysioNetFormatError", "TensorBatches", "attention_maps",
           "binary_metrics", "load_physionet2012", "predict_proba", "read_physionet2012", "read_texts",
           "simulate_icu_stays", "static_features", "synthetic_physionet2012", "write_physionet"]

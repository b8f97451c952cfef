"""Data: the registry (``load(name, profile)``) and the sources it knows.

Importing this package registers every source module listed below (the image sets here; the time-series
sources at the end, after the registry's names exist).
"""

from l6kit.data import images  # noqa: F401  (registers the image sources)
from l6kit.data.registry import (
    ChecksumError,
    DataError,
    DataMissingError,
    OfflineError,
    RemoteFile,
    Source,
    data_home,
    get,
    load,
    register,
    sources,
)

__all__ = ["ChecksumError", "DataError", "DataMissingError", "OfflineError", "RemoteFile", "Source",
           "data_home", "get", "load", "register", "sources"]

from l6kit.timeseries import mimic, synthetic  # noqa: E402, F401, I001  (registers the time-series sources)
from l6kit.ehr import physionet  # noqa: E402, F401, I001  (registers PhysioNet 2012)
from l6kit.retrieval import revisitop, semi  # noqa: E402, F401, I001  (revisited Oxford / Paris, GLDv2 descriptors)
from l6kit.recsys import amazon, dropoutnet, movielens, tafa  # noqa: E402, F401, I001  (MovieLens, Amazon, Yelp, CiteULike)
from l6kit.privacy import mil  # noqa: E402, F401, I001  (registers TCGA tile features)

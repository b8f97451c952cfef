"""l6kit: the helper package behind the l6kit book of Layer 6 AI's publications.

Subpackages hold one research family each (``manifold``, ...); ``papers/<slug>.py`` holds a paper's
configuration per profile and its experiment; ``profiles``, ``claims``, ``data``, ``train`` and ``viz`` are
shared by all of them.
"""

__version__ = "0.1.0"

"""The papers of the book: a catalogue of all 37, and the modules of those whose notebook exists.

``CATALOGUE`` lists every paper (slug, title, venue, family); a paper is *written* once
``l6kit/papers/<slug>.py`` and ``notebooks/<slug>.ipynb`` exist.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from types import ModuleType


@dataclasses.dataclass(frozen=True)
class Paper:
    """One paper of the book."""

    slug: str
    title: str
    venue: str
    family: str


CATALOGUE: dict[str, Paper] = {p.slug: p for p in (
    Paper('uomh', 'Verifying the Union of Manifolds Hypothesis for Image Data', 'ICLR 2023', 'manifolds-generative'),
    Paper('two-step', 'Diagnosing and Fixing Manifold Overfitting in Deep Generative Models', 'TMLR 2022', 'manifolds-generative'),
    Paper('rectangular-flows', 'Rectangular Flows for Manifold Learning', 'NeurIPS 2021', 'manifolds-generative'),
    Paper('cef', 'Tractable Density Estimation on Learned Manifolds with Conformal Embedding Flows', 'NeurIPS 2021', 'manifolds-generative'),
    Paper('tr0n', 'TR0N: Translator Networks for 0-Shot Plug-and-Play Conditional Generation', 'ICML 2023', 'manifolds-generative'),
    Paper('winit', 'Temporal Dependencies in Feature Importance for Time Series Prediction', 'ICLR 2023', 'timeseries-ehr'),
    Paper('duett', 'DuETT: Dual Event Time Transformer for Electronic Health Records', 'MLHC 2023', 'timeseries-ehr'),
    Paper('fair-dp', 'Disparate Impact in Differential Privacy from Gradient Misalignment', 'ICLR 2023', 'privacy-federated'),
    Paper('proxyfl', 'Decentralized federated learning through proxy model sharing', 'Nature Communications 2023', 'privacy-federated'),
    Paper('fl-dp-histopathology', 'Federated learning and differential privacy for medical image analysis', 'Scientific Reports 2022', 'privacy-federated'),
    Paper('hgcf', 'HGCF: Hyperbolic Graph Convolution Networks for Collaborative Filtering', 'WWW 2021', 'recommenders'),
    Paper('dropoutnet', 'DropoutNet: Addressing Cold Start in Recommender Systems', 'NIPS 2017', 'recommenders'),
    Paper('tafa', 'TAFA: Two-headed Attention Fused Autoencoder for Context-Aware Recommendations', 'RecSys 2020', 'recommenders'),
    Paper('recsys2017', 'Content-based Neighbor Models for Cold Start in Recommender Systems', 'RecSys Challenge 2017 (1st)', 'recommenders'),
    Paper('recsys2018', 'Two-stage Model for Automatic Playlist Continuation at Scale', 'RecSys Challenge 2018 (1st)', 'recommenders'),
    Paper('recsys2019', 'Robust Contextual Models for In-Session Personalization', 'RecSys Challenge 2019 (2nd)', 'recommenders'),
    Paper('recsys2020', 'Predicting Twitter Engagement With Deep Language Models', 'RecSys Challenge 2020 (2nd per paper)', 'recommenders'),
    Paper('recsys2021', 'User Engagement Modeling with Deep Learning and Language Models', 'RecSys Challenge 2021 (3rd, public LB)', 'recommenders'),
    Paper('recsys2022', 'Session-based Recommendation with Transformers', 'RecSys Challenge 2022 (2nd)', 'recommenders'),
    Paper('recsys2023', 'Robust User Engagement Modeling with Transformers and Self-Supervision', 'RecSys Challenge 2023 (1st)', 'recommenders'),
    Paper('egt', 'Explore-Exploit Graph Traversal for Image Retrieval', 'CVPR 2019', 'retrieval'),
    Paper('semi-egt', 'Semi-Supervised Exploration in Image Retrieval', 'Google Landmark Retrieval 2019 (3rd)', 'retrieval'),
    Paper('gss', 'Guided Similarity Separation for Image Retrieval', 'NeurIPS 2019 (oral)', 'retrieval'),
    Paper('landmark2018-mst', 'Modified Maximum Spanning Tree Clustering for Large-Scale Image Retrieval', 'Google Landmark Retrieval 2018 (2nd)', 'retrieval'),
    Paper('bnpo', 'Bayesian Nonparametrics for Offline Skill Discovery', 'ICML 2022', 'rl'),
    Paper('c-learning', 'C-Learning: Horizon-Aware Cumulative Accessibility Estimation', 'ICLR 2021', 'rl'),
    Paper('t-fixup', 'Improving Transformer Optimization Through Better Initialization', 'ICML 2020', 'sequence-vision-nlp'),
    Paper('xpool', 'X-Pool: Cross-Modal Language-Video Attention for Text-Video Retrieval', 'CVPR 2022', 'sequence-vision-nlp'),
    Paper('asl', 'Weakly Supervised Action Selection Learning in Video', 'CVPR 2021', 'sequence-vision-nlp'),
    Paper('sgg-seq2seq', 'Context-aware Scene Graph Generation with Seq2Seq Transformers', 'ICCV 2021', 'sequence-vision-nlp'),
    Paper('yt8m-ccrl', 'Cross-Class Relevance Learning for Temporal Concept Localization', 'ICCV 2019 YouTube-8M workshop (1st)', 'sequence-vision-nlp'),
    Paper('vrd-openimages', 'Learning Effective Visual Relationship Detector on 1 GPU', 'Open Images 2019 VRD (1st)', 'sequence-vision-nlp'),
    Paper('squad2', '"BERT + ConvLSTM + MTL + Verifier (ensemble)" (no paper)', 'SQuAD 2.0 leaderboard, 2019', 'sequence-vision-nlp'),
    Paper('diabetes', 'Predicting adverse outcomes due to diabetes complications with machine learning using administrative health data', 'npj Digital Medicine 2021', 'health-science'),
    Paper('can-npi', 'Characterizing early Canadian federal, provincial, territorial and municipal nonpharmaceutical interventions in response to COVID-19: a descriptive analysis', 'CMAJ Open 2020', 'health-science'),
    Paper('d614g', 'Evolutionary and structural analyses of SARS-CoV-2 D614G spike protein mutation now documented worldwide', 'Scientific Reports 2020', 'health-science'),
    Paper('rsna-pneumonia', '4th place solution (Layer 6 + 16Bit)', 'RSNA Pneumonia Detection Challenge 2018 (4th)', 'health-science'),
)}


def notebook_path(slug: str) -> Path:
    """Where the paper's notebook lives in a checkout: ``notebooks/<slug>.ipynb``."""
    return Path(__file__).resolve().parents[2] / "notebooks" / f"{slug}.ipynb"


def written() -> list[str]:
    """Slugs whose paper module and notebook both exist, in catalogue order."""
    here = Path(__file__).resolve().parent
    return [s for s in CATALOGUE if (here / f"{s.replace('-', '_')}.py").exists() and notebook_path(s).exists()]


def module(slug: str) -> ModuleType:
    """The paper module ``l6kit.papers.<slug>`` (dashes become underscores).

    Raises:
        ValueError: the slug is unknown or its notebook is not written yet; the message lists the written ones.
    """
    if slug not in CATALOGUE:
        raise ValueError(f"unknown paper {slug!r}; known: {', '.join(written())} (written), "
                         f"{len(CATALOGUE)} in the catalogue (`l6kit list`)")
    if slug not in written():
        raise ValueError(f"paper {slug!r} has no notebook yet; written: {', '.join(written())}")
    return importlib.import_module(f"l6kit.papers.{slug.replace('-', '_')}")

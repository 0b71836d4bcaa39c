"""Semi-synthetic medical images with ground-truth counterfactuals: chest X-ray, brain MRI and 3-D chest CT.

Real patients have no true counterfactuals; these cohorts do. Each subject is (anatomy parameters,
noise seed) + causal factor values, rendered on real anatomy that ships with the install (the PA
radiograph RG1_UNCR.dcm from pydicom-data; nilearn's MNI152 template) or, for chest CT, where none
ships, on an analytic phantom in Hounsfield units (`ct_anatomy`). A render is a pure function
of the subject and its factor values, so the counterfactual "this patient without the nodule" is
the same call with nodule=0: same anatomy, same noise. Effect masks mark where a factor changed the
image (|difference| > EFFECT_THRESHOLD, united with the finding's own mask).

    subject = sample_cxr_subject(seed=0, index=7)
    factual = render_cxr(subject, 128)
    healthy = render_cxr(subject, 128, nodule=0)
    synthesize("cxr", Path("cxr_data"), n=2000, size=128, seed=0)   # folder + CSV layout on disk
    synthesize("ct", Path("ct_data"), n=50, size=64)                 # 64x64x32 NIfTI volumes in HU

The effects, their magnitudes and rationale are tabled in `cxr`, `brain` and `ct`; the causal graphs of
the cohorts in `cxr_subject`, `brain_subject` and `ct_subject`.
"""

from medcf.data.synthetic.brain import render_brain
from medcf.data.synthetic.brain3d import render_brain3d
from medcf.data.synthetic.brain_subject import BRAIN_FACTORS, BrainSubject, sample_brain_subject
from medcf.data.synthetic.ct import render_ct
from medcf.data.synthetic.ct_subject import CT_FACTORS, CtSubject, sample_ct_subject
from medcf.data.synthetic.cxr import render_cxr
from medcf.data.synthetic.cxr_subject import CXR_FACTORS, CxrSubject, sample_cxr_subject
from medcf.data.synthetic.factors import EFFECT_THRESHOLD, Factor, Render, counterfactual_values, effect_mask
from medcf.data.synthetic.grid import preview_grid, preview_kind
from medcf.data.synthetic.kinds import KINDS
from medcf.data.synthetic.writer import synthesize

__all__ = [
    "BRAIN_FACTORS",
    "CT_FACTORS",
    "CXR_FACTORS",
    "EFFECT_THRESHOLD",
    "KINDS",
    "BrainSubject",
    "CtSubject",
    "CxrSubject",
    "Factor",
    "Render",
    "counterfactual_values",
    "effect_mask",
    "preview_grid",
    "preview_kind",
    "render_brain",
    "render_brain3d",
    "render_ct",
    "render_cxr",
    "sample_brain_subject",
    "sample_ct_subject",
    "sample_cxr_subject",
    "synthesize",
]

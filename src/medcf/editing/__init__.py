"""Counterfactual editing: image + source prompt → the image under a target prompt; lesion inpainting.

source, target = edit_prompts(template, [row], ["pleural_effusion=absent"])
edited = counterfactual(components, images, source, target, engine="inversion", latent_drift=0.05)
lesion = inpaint(components, images, masks, ["chest X-ray with right lower lobe consolidation"])
"""

from medcf.editing.counterfactual import ENGINES, counterfactual
from medcf.editing.inpaint import inpaint
from medcf.editing.null_text import null_text_embeddings
from medcf.editing.rows import counterfactual_rows, edit_prompts, healthy_prompts

__all__ = [
    "ENGINES",
    "counterfactual",
    "counterfactual_rows",
    "edit_prompts",
    "healthy_prompts",
    "inpaint",
    "null_text_embeddings",
]

"""Counterfactual editing: image + source prompt → the image under a target prompt; lesion inpainting.

source, target = edit_prompts(template, [row], ["pleural_effusion=absent"])
edited = counterfactual(components, images, source, target, engine="inversion", latent_drift=0.05)
directions = paraphrase_prompts(template, [row], ["pleural_effusion=absent"])  # pix2pix-zero's sentence sets
edited = counterfactual(components, images, source, target, engine="pix2pix-zero", direction_prompts=directions)
lesion = inpaint(components, images, masks, ["chest X-ray with right lower lobe consolidation"])
"""

from medcf.editing.counterfactual import ENGINES, counterfactual
from medcf.editing.inpaint import inpaint
from medcf.editing.null_text import null_text_embeddings
from medcf.editing.paraphrases import healthy_paraphrases, paraphrase_prompts
from medcf.editing.pix2pix_zero import edit_direction
from medcf.editing.rows import counterfactual_rows, edit_prompts, healthy_prompts

__all__ = [
    "ENGINES",
    "counterfactual",
    "counterfactual_rows",
    "edit_direction",
    "edit_prompts",
    "healthy_paraphrases",
    "healthy_prompts",
    "inpaint",
    "null_text_embeddings",
    "paraphrase_prompts",
]

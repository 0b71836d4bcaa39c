"""Attribution maps (B, 1, H, W) in image space: where an image differs from, or drives, a prediction.

result = counterpart_attribution(components, images, source_prompts, healthy_prompts, seeds=(0, 1, 2))
saliency, cam = gradient_saliency(classifier, images, k), grad_cam(classifier, images, k)
effect = population_effect(diffusion_pairs(...), 200, attribute="smoking", anatomy_mask=lungs)
"""

from medcf.attribution.difference import CounterpartAttribution, counterpart_attribution, difference_map, refine_map
from medcf.attribution.effect import ATTRIBUTE_CONTRASTS, EffectResult, matched_rows, population_effect
from medcf.attribution.effect_pairs import cohort_anatomy_mask, cohort_pairs, cohort_rows, diffusion_pairs
from medcf.attribution.effect_report import write_effect
from medcf.attribution.gradients import grad_cam, gradient_saliency

__all__ = [
    "ATTRIBUTE_CONTRASTS",
    "CounterpartAttribution",
    "EffectResult",
    "cohort_anatomy_mask",
    "cohort_pairs",
    "cohort_rows",
    "counterpart_attribution",
    "difference_map",
    "diffusion_pairs",
    "grad_cam",
    "gradient_saliency",
    "matched_rows",
    "population_effect",
    "refine_map",
    "write_effect",
]

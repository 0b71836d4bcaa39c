"""A small CNN classifier of findings and clinical labels: an attribution target and a domain feature extractor."""

from medcf.classifier.data import LabelledImages, default_label_names, labelled_images, load_labelled_images
from medcf.classifier.features import ClassifierFeatures
from medcf.classifier.fit import classify, evaluate, fit_classifier, resize_for_classifier
from medcf.classifier.network import ImageClassifier
from medcf.classifier.run import train_classifier_to_folder
from medcf.classifier.storage import load_classifier, save_classifier

__all__ = [
    "ClassifierFeatures",
    "ImageClassifier",
    "LabelledImages",
    "classify",
    "default_label_names",
    "evaluate",
    "fit_classifier",
    "labelled_images",
    "load_classifier",
    "load_labelled_images",
    "resize_for_classifier",
    "save_classifier",
    "train_classifier_to_folder",
]

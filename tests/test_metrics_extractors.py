"""TorchScriptInceptionFeatures (fid_inception) on a tiny scripted stand-in, ClassifierFeatures (fid_domain)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medcf.classifier.features import ClassifierFeatures
from medcf.classifier.network import ImageClassifier
from medcf.classifier.storage import load_classifier, save_classifier
from medcf.metrics.distribution import frechet_distance
from medcf.metrics.features import fid_kid
from medcf.metrics.inception import TorchScriptInceptionFeatures

# torch 2.x deprecates TorchScript, but inception-2015-12-05.pt exists only in that format.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.(script|load)` is deprecated:DeprecationWarning")


class _TinyInception(nn.Module):
    """Same forward signature as inception-2015-12-05.pt; records (C, H, W, min, max) of its last input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, kernel_size=3, stride=4)
        self.logits = nn.Linear(6, 4)
        self.register_buffer("seen", torch.zeros(5))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        self.seen = torch.stack([torch.tensor(float(d)) for d in x.shape[1:]] + [x.min(), x.max()])
        features = torch.tanh(self.conv(x / 128 - 1)).mean(dim=(2, 3))  # (B, 6)
        return features if return_features else self.logits(features)


class _Unpooled(nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x[:, :, :1, :1]  # (B, 3, 1, 1): not (B, D)


@pytest.fixture(scope="module")
def inception_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "inception-2015-12-05.pt"
    torch.jit.script(_TinyInception()).save(str(path))
    return path


def _images(count: int, channels: int, side: int, seed: int) -> torch.Tensor:
    return torch.rand(count, channels, side, side, generator=torch.Generator().manual_seed(seed))


def _hand_inception(path: Path, images: torch.Tensor) -> torch.Tensor:
    model = torch.jit.load(str(path))
    pixels = F.interpolate(images.expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear", antialias=True)
    return model(pixels * 255, return_features=True)


def test_inception_features_have_shape_and_see_299_px_rgb_in_0_255(inception_path):
    extractor = TorchScriptInceptionFeatures(inception_path)
    images = torch.cat([torch.zeros(1, 1, 64, 64), torch.ones(1, 1, 64, 64), _images(2, 1, 64, 3)])
    features = extractor(images)
    assert features.shape == (4, 6) and features.dtype == torch.float32
    channels, height, width, low, high = extractor.model.seen.tolist()
    assert (channels, height, width) == (3, 299, 299)
    assert low == pytest.approx(0.0, abs=1e-3) and high == pytest.approx(255.0, abs=1e-3)
    assert torch.allclose(features, _hand_inception(inception_path, images), atol=1e-6)
    assert (extractor.name, extractor.resize) == ("inception", "299 bilinear")


def test_inception_features_are_deterministic_and_grey_equals_equal_rgb(inception_path):
    grey = _images(3, 1, 40, 4)
    first, second = TorchScriptInceptionFeatures(inception_path), TorchScriptInceptionFeatures(inception_path)
    assert torch.equal(first(grey), first(grey)) and torch.equal(first(grey), second(grey))
    assert torch.allclose(first(grey), first(grey.expand(-1, 3, -1, -1)), atol=1e-6)


def test_inception_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: no such file; .*inception-2015-12-05\.pt"):
        TorchScriptInceptionFeatures(tmp_path / "missing.pt")
    state_dict = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(nn.Linear(2, 2).state_dict(), state_dict)
    message = r"6726825d\.pth: not a TorchScript file .*TorchScript inception-2015-12-05\.pt"
    with pytest.raises(ValueError, match=message):
        TorchScriptInceptionFeatures(state_dict)
    unpooled = tmp_path / "unpooled.pt"
    torch.jit.script(_Unpooled()).save(str(unpooled))
    with pytest.raises(ValueError, match=r"unpooled\.pt: returned shape \(2, 3, 1, 1\) for 2 images") as error:
        TorchScriptInceptionFeatures(unpooled)(_images(2, 1, 8, 5))
    assert "\n" not in str(error.value)


def test_fid_kid_with_inception_reports_fid_inception(inception_path):
    real, fake = _images(6, 1, 32, 6), _images(5, 3, 48, 7) * 0.7
    report = fid_kid(real, fake, TorchScriptInceptionFeatures(inception_path), kid_subsets=3)
    expected = frechet_distance(_hand_inception(inception_path, real), _hand_inception(inception_path, fake))
    assert report["fid_inception"] == pytest.approx(expected, rel=1e-5)
    assert {"kid_inception_mean", "kid_inception_std"} <= set(report)
    assert (report["extractor"], report["resize"]) == ("inception", "299 bilinear")


@pytest.fixture
def network() -> ImageClassifier:
    torch.manual_seed(0)
    network = ImageClassifier(["a", "b"], image_size=16, channels=(4, 8))
    network.train()(_images(8, 1, 16, 8) * 2 - 1)  # move BatchNorm running statistics off their defaults
    return network


def test_domain_features_equal_the_classifier_embedding(network):
    extractor = ClassifierFeatures(network)
    native, large = _images(3, 1, 16, 9), _images(3, 1, 32, 10)
    features = extractor(native)
    assert features.shape == (3, 8) and features.dtype == torch.float32
    assert (extractor.name, extractor.resize) == ("domain", "16 bilinear")
    assert not network.training
    with torch.no_grad():
        assert torch.equal(features, network.embed(native * 2 - 1))
        resized = F.interpolate(large, size=(16, 16), mode="bilinear", antialias=True)
        assert torch.allclose(extractor(large), network.embed(resized * 2 - 1), atol=1e-6)
    assert torch.allclose(extractor(native[:1]), features[:1], atol=1e-6)  # eval BatchNorm: no batch dependence


def test_domain_features_average_rgb_to_grey(network):
    extractor, grey, colour = ClassifierFeatures(network), _images(2, 1, 24, 11), _images(2, 3, 24, 12)
    assert torch.allclose(extractor(grey), extractor(grey.expand(-1, 3, -1, -1)), atol=1e-6)
    assert torch.allclose(extractor(colour), extractor(colour.mean(dim=1, keepdim=True)), atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 24, 24\)"):
        extractor(colour[:, :2])


def test_fid_kid_with_domain_features_reports_fid_domain(network):
    extractor, real, fake = ClassifierFeatures(network), _images(10, 1, 16, 13), _images(9, 1, 16, 14) * 0.5
    report = fid_kid(real, fake, extractor, kid_subsets=3)
    assert report["fid_domain"] == pytest.approx(frechet_distance(extractor(real), extractor(fake)), rel=1e-6)
    assert (report["extractor"], report["resize"]) == ("domain", "16 bilinear")


def test_domain_features_survive_save_and_load(network, tmp_path):
    images = _images(4, 1, 20, 15)
    expected = ClassifierFeatures(network)(images)
    loaded = load_classifier(save_classifier(network, tmp_path / "classifier"))
    assert torch.allclose(ClassifierFeatures(loaded)(images), expected, atol=1e-6)

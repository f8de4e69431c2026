"""The embedded zoo: small models of three families, trained on the world.

Three architectures, so that universality across architectures can be studied,
each sized to train on a CPU in minutes on the world's 64x64 scenes:

- ``inception``: parallel 1x1 / 3x3 / 5x5 / pool branches, concatenated, named after
  InceptionV1 (``conv2d0`` ... ``mixed4a``); conv + batch norm + ReLU blocks, as
  torchvision's GoogLeNet (without batch norm this depth does not start learning).
- ``resnet``: residual basic blocks with batch norm, named like torchvision's ResNet
  (``conv1``, ``layer1`` ... ``layer3``).
- ``alexnet``: a plain stack of convolutions (``conv1`` ... ``conv5``).

For universality across seeds and tasks, two more models repeat an architecture:
``alexnet-seed1`` (AlexNet's recipe from another seed) and ``inception-rotation``
(the inception architecture trained on another task of the same world: which quarter
turn was applied to a scene, the self-supervised task of Gidaris et al. 2018; AlexNet,
without batch norm, does not start learning that task in this recipe).

Every model opens with a 7x7 convolution over RGB at stride 2: a first kernel large
enough for Gabor filters and color-contrast detectors to show. Inputs are RGB in
[0, 1] normalised by the world's channel statistics (``WORLD_MEAN``/``WORLD_STD``).
Trained weights live beside this file in ``zoo_weights/<name>.pt``; ``atlas train NAME``
reproduces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent / "zoo_weights"
WORLD_MEAN = (0.45, 0.43, 0.38)
WORLD_STD = (0.24, 0.23, 0.24)
INPUT_SIZE = 64
NUM_CLASSES = 8
TASK_OUTPUTS = {"classes": NUM_CLASSES, "rotation": 4}  # what each training task predicts


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """Convolution + ReLU as one named layer, so the layer's output is the feature."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2), nn.ReLU(inplace=True))


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """Convolution + batch norm + ReLU, as torchvision's GoogLeNet builds its blocks."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Mixed(nn.Module):
    """An Inception block: four branches over the same input, concatenated."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int):
        super().__init__()
        self.branch1x1 = _conv_bn(cin, c1, 1)
        self.branch3x3 = nn.Sequential(_conv_bn(cin, c3r, 1), _conv_bn(c3r, c3, 3))
        self.branch5x5 = nn.Sequential(_conv_bn(cin, c5r, 1), _conv_bn(c5r, c5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_bn(cin, cp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch3x3(x), self.branch5x5(x), self.branch_pool(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv2d0 = _conv_bn(3, 32, 7, stride=2)  # 32x32
        self.pool0 = nn.MaxPool2d(3, stride=2, padding=1)  # 16x16
        self.conv2d1 = _conv_bn(32, 32, 1)
        self.conv2d2 = _conv_bn(32, 64, 3)
        self.mixed3a = Mixed(64, 32, 32, 48, 8, 16, 16)  # 112 channels
        self.mixed3b = Mixed(112, 32, 48, 64, 12, 24, 24)  # 144 channels
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)  # 8x8
        self.mixed4a = Mixed(144, 48, 48, 96, 16, 32, 32)  # 208 channels
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(208, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d2(self.conv2d1(self.pool0(self.conv2d0(x))))
        x = self.mixed4a(self.pool3(self.mixed3b(self.mixed3a(x))))
        return self.head(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 32, 7, stride=2, padding=3, bias=False),
                                   nn.BatchNorm2d(32), nn.ReLU())  # 32x32
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)  # 16x16
        self.layer1 = nn.Sequential(BasicBlock(32, 32), BasicBlock(32, 32))
        self.layer2 = nn.Sequential(BasicBlock(32, 64, stride=2), BasicBlock(64, 64))  # 8x8
        self.layer3 = nn.Sequential(BasicBlock(64, 128, stride=2))  # 4x4
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.maxpool(self.conv1(x)))))
        return self.head(x)


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = _conv(3, 48, 7, stride=2)  # 32x32
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)  # 16x16
        self.conv2 = _conv(48, 64, 5)
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)  # 8x8
        self.conv3 = _conv(64, 96, 3)
        self.conv4 = _conv(96, 96, 3)
        self.conv5 = _conv(96, 64, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.head(self.conv5(self.conv4(self.conv3(x))))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "inception": InceptionNet, "resnet": ResNet, "alexnet": AlexNet,
}


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: an architecture trained on a task from a seed."""

    arch: str  # a key of ARCHITECTURES
    task: str = "classes"  # a key of TASK_OUTPUTS
    seed: int = 0

    def build(self) -> nn.Module:
        return ARCHITECTURES[self.arch](num_classes=TASK_OUTPUTS[self.task])


ZOO: dict[str, ZooModel] = {
    "inception": ZooModel("inception"),
    "resnet": ZooModel("resnet"),
    "alexnet": ZooModel("alexnet"),
    "alexnet-seed1": ZooModel("alexnet", seed=1),
    "inception-rotation": ZooModel("inception", task="rotation"),
}


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"

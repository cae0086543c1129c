#!/usr/bin/env python3
"""Exports the default `make train` model: a small CNN for 28x28 grayscale
images (Fashion-MNIST), in PyTorch's training mode (BatchNormalization with
training_mode, as torch.onnx.export writes it) at opset 17 with a symbolic
batch dimension. Deterministic: seed 0. Regenerate with
    python3 zoo/fashion-mnist/make_model.py
"""
import os

import torch
from torch import nn


class FashionCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def main():
    torch.manual_seed(0)
    model = FashionCnn().train()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx")
    torch.onnx.export(model, torch.randn(2, 1, 28, 28), out, opset_version=17, dynamo=False,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    print("wrote", out, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()

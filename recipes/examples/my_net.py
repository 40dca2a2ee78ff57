"""An example network of your own, named by recipes/examples/my_net.yaml as `model.arch: my_net.py:my_net`.

Any function will do that takes the recipe's model.params as keyword arguments, plus num_classes, and returns
a torch.nn.Module. The file is part of the recipe: its sha256 goes into the recipe hash (edit it, and the
recipe is a new one) and a report bundle keeps a copy that `bench verify --rerun` builds from. Import only
installed packages here; a network spread over several files is a package, named as package.module:function.
"""
import torch.nn as nn


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def my_net(num_classes: int = 10, widths: tuple = (16, 32, 64), dropout: float = 0.0) -> nn.Module:
    """A plain VGG-style stack: per width, two 3x3 convs and a 2x2 max pool; then global max pool and a linear head."""
    layers, c = [], 3
    for w in widths:
        layers += [conv_bn_relu(c, w), conv_bn_relu(w, w), nn.MaxPool2d(2)]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(c, num_classes))

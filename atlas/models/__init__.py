"""Load the model a config names, with the preprocessing that belongs to it.

``load_model`` turns a ``[[models]]`` entry into a ``LoadedModel``: the module
(in eval mode, weights frozen), the normalisation its inputs need, its input size
and a digest of its weights. Every stage feeds the model images in [0, 1] through
``LoadedModel.normalize``, so no stage needs to know where a model came from.

Architectures (the ``arch`` key):

- ``torchvision:<name>``: any torchvision classification model. ``weights`` is
  ``none`` (seeded random init), a torchvision weights name such as
  ``IMAGENET1K_V1`` (downloaded once into the torch hub cache), or a state dict path.
- ``lucent:inceptionv1``: the InceptionV1 of the Circuits papers, with its layer
  names (``conv2d0`` ... ``mixed5b``). ``weights`` is ``none``, ``pretrained``
  (lucent's converted weights, via the hub cache) or a state dict path.
- ``zoo:<name>``: the embedded zoo (``inception``, ``resnet``, ``alexnet``,
  ``alexnet-seed1``, ``inception-rotation``), small models trained on the procedural
  world. ``weights`` is ``trained`` (the committed weights), ``none`` or a state dict path.
- ``package.module:factory``: any importable callable returning an ``nn.Module``;
  ``weights`` is ``none`` or a state dict path. Its input is RGB in [0, 1] unless
  the config gives ``mean`` and ``std``.
"""

from atlas.models.loading import LoadedModel, load_model, weights_digest

__all__ = ["LoadedModel", "load_model", "weights_digest"]

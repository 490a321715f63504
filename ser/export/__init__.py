"""A trained model as a portable ONNX bundle (:mod:`ser.export.bundle`), run by onnxruntime and numpy alone
(:mod:`ser.export.runtime`)."""

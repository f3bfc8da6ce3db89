"""mnistkit.export: Keras zoo models to TFLite and ONNX, float or quantized.

    from mnistkit.export.base import export, describe
    from mnistkit.export.modes import ExportConfig
    path = export("runs/lstm/model.keras", ExportConfig("tflite", "int8"), "exports")

``modes`` holds the vocabulary (Format, Mode, ExportConfig, file names), ``base`` the shared parts
and the format registry, ``tflite``/``onnx`` one exporter each, ``worker`` the crash-isolating child
process, ``manifest`` the JSON written beside each file. ``mnistkit export`` (tools/exporting.py)
adds the parity proof through the device runtime before anything is published.
"""

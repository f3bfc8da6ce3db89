"""mnistkit.export: Keras zoo models to TFLite and ONNX, float or quantized, proven before publishing.

    from mnistkit.export import export
    outcomes = export("runs/lstm", formats=["tflite"], modes=["int8"], out="exports")
    for o in outcomes:
        print(o.target, o.ok, o.message)

:func:`export` gives a Python caller exactly what ``mnistkit export`` gives: every conversion runs in
a child process (a converter crash fails only that file), every file is run through the device
runtime against the Keras source on the MNIST test set, and only a file that meets its mode's
parity thresholds is published, atomically, with its manifest beside it.

Modules: ``pipeline`` (plan, isolate, check, publish), ``worker`` (the child process), ``base``
(format registry, graph to convert, calibration, op census), ``tflite`` / ``onnx`` (one converter
each), ``modes`` (formats, modes, the export config and file names), ``mode_rules`` (what each mode
means: fallbacks, known limits, thresholds), ``parity`` (the comparison and ``mnistkit parity``),
``manifest`` (building the JSON written beside each file), ``compat`` (tflite-runtime 2.14 census).
The TFLite post-conversion passes are ``tflite_fixups``, ``tflite_while`` and ``recurrent_loop``.
"""

from mnistkit.export.pipeline import Outcome, export

__all__ = ["Outcome", "export"]

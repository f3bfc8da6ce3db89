"""Developer scripts (argparse, ``python -m mnistkit.tools.scripts.<name>``), not part of the CLI.

``make_samples``: a labelled photo-like digit set (and the bundled samples). ``measure_photos``: a
model's accuracy on such a set. ``measure_photo_speed``: the photo path's time against a bare
Pillow decode + resize. ``bundle_default``: copy an export into the runtime's default model.
``compare_exports``: did a change alter what ``mnistkit export`` writes (two export folders, file by file).
"""

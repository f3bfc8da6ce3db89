"""mnistkit.tools.robustness: accuracy under controlled, seeded distribution shifts.

``shifts`` (the shifted test images), ``benchmark`` (shift, preprocess, evaluate, table) and
``matrix`` (several models at once into ``reports/robustness.json``; a script:
``python -m mnistkit.tools.robustness.matrix``).
"""

"""REPORT.md and the figures in it: ``build`` (the report from measured inputs, behind
``mnistkit report``), ``plots`` (PNG charts), ``metrics`` (accuracy, per-class metrics, confusion
matrix in plain numpy), ``robustness`` (the robustness section, from ``reports/robustness.json``).
"""

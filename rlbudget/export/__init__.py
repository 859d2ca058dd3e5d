"""Export: a Policy as code a device can run (C99) or as an ONNX graph (the onnx extra;
onnx is imported only when :func:`export_onnx` runs)."""

from rlbudget.export.c import ExportResult, export_c
from rlbudget.export.onnx import OnnxExportResult, export_onnx

__all__ = ["ExportResult", "OnnxExportResult", "export_c", "export_onnx"]

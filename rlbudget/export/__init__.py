"""Export: a Policy as code a device can run (C99), as an ONNX graph (the onnx extra; onnx
is imported only when :func:`export_onnx` runs) or as a TFLite flatbuffer (the tflite
extra; flatbuffers is imported only when :func:`export_tflite` runs)."""

from rlbudget.export.c import ExportResult, export_c
from rlbudget.export.onnx import OnnxExportResult, export_onnx
from rlbudget.export.tflite import TfliteExportResult, export_tflite

__all__ = ["ExportResult", "OnnxExportResult", "TfliteExportResult", "export_c", "export_onnx",
           "export_tflite"]  # fmt: skip

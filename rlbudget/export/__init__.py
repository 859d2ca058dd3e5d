"""Export: a Policy printed as code a device can run (C99 now; ONNX later)."""

from rlbudget.export.c import ExportResult, export_c

__all__ = ["ExportResult", "export_c"]

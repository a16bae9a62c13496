from coffer.storage.disk.engine import DiskEngine

__all__ = ["DiskEngine"]

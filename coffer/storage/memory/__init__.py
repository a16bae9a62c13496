from coffer.storage.memory.engine import MemoryEngine, MemoryStats

__all__ = ["MemoryEngine", "MemoryStats"]

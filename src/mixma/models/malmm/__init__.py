"""MA-LMM: a memory-augmented video LLM (InstructBLIP + memory banks + MBC)."""

from mixma.models.malmm.memory import Bank, MemoryState, compress_memory
from mixma.models.malmm.modeling import MALMM, MALMMConfig, MALMMOutput

__all__ = ["MALMM", "MALMMConfig", "MALMMOutput", "Bank", "MemoryState", "compress_memory"]

"""MA-LMM: a memory-augmented video LLM (InstructBLIP + memory banks + MBC)."""

from mixma.models.malmm.memory import Bank, MemoryPolicy, MemoryState, compress_memory
from mixma.models.malmm.modeling import MALMM, MALMMConfig, MALMMOutput
from mixma.models.malmm.streaming import StreamingBank

__all__ = ["MALMM", "MALMMConfig", "MALMMOutput", "Bank", "MemoryPolicy", "MemoryState", "StreamingBank", "compress_memory"]

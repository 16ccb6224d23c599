"""What machine a figure was measured on: the CPU's name and the instruction sets that decide int8 speed-ups (AVX2
alone multiplies int8 through 16-bit intermediates, about 2x over fp32 for CNNs; AVX-512 VNNI / AVX-VNNI add a fused
int8 dot product, 3-4x; AMX adds int8 and bf16 matrix tiles), read from the kernel's CPU flags."""
import os
import platform
import subprocess
from contextlib import suppress
from typing import Dict, List, Sequence

#: The flags that matter for reduced-precision inference, in the order they are reported.
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8')


def cpu_flags() -> List[str]:
    """The CPU's flags (/proc/cpuinfo, the same list ``lscpu`` prints); empty where they cannot be read."""
    with suppress(OSError), open('/proc/cpuinfo') as info:
        return next((line.split(':', 1)[1].split() for line in info if line.startswith('flags')), [])
    return []


def int8_class(flags: Sequence[str]) -> str:
    """The best int8 instruction set present: 'AMX', 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 only' or 'no AVX2'."""
    best = (('amx_int8', 'AMX'), ('avx512_vnni', 'AVX-512 VNNI'), ('avx_vnni', 'AVX-VNNI'), ('avx2', 'AVX2 only'))
    return next((name for flag, name in best if flag in flags), 'no AVX2')


def cpu_isa() -> Dict[str, object]:
    """``{'int8': int8_class, 'bf16': bool, 'flags': [the ISA_FLAGS present]}`` for reports."""
    flags = cpu_flags()
    present = [f for f in ISA_FLAGS if f in flags]
    return {'int8': int8_class(flags) if flags else 'unknown', 'bf16': bool({'avx512_bf16', 'amx_bf16'} & set(flags)),
            'flags': present}


def machine_name() -> str:
    """CPU model (lscpu / /proc/cpuinfo) and logical CPU count."""
    name = ''
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        name = next((line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name')), '')
    if not name:
        with suppress(OSError), open('/proc/cpuinfo') as info:
            name = next((line.split(':', 1)[1].strip() for line in info if line.startswith('model name')), '')
    return f'{name or platform.processor() or "unknown CPU"}, {os.cpu_count()} logical CPUs'

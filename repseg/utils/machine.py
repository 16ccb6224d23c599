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
#: Either of these gives a CPU native bf16 arithmetic (without them OpenVINO runs a bf16 request in f32).
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
#: The CPU classes ``cpu_class`` returns, fastest reduced precision first.
CPU_CLASSES = ('AMX', 'AVX-512 BF16', 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 only', 'no AVX2', 'unknown')


def cpu_flags() -> List[str]:
    """The CPU's flags (/proc/cpuinfo, the same list ``lscpu`` prints); empty where they cannot be read."""
    with suppress(OSError), open('/proc/cpuinfo') as info:
        return next((line.split(':', 1)[1].split() for line in info if line.startswith('flags')), [])
    return []


def int8_class(flags: Sequence[str]) -> str:
    """The best int8 instruction set present: 'AMX', 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 only' or 'no AVX2'."""
    best = (('amx_int8', 'AMX'), ('avx512_vnni', 'AVX-512 VNNI'), ('avx_vnni', 'AVX-VNNI'), ('avx2', 'AVX2 only'))
    return next((name for flag, name in best if flag in flags), 'no AVX2')


def has_bf16(flags: Sequence[str]) -> bool:
    return any(flag in flags for flag in BF16_FLAGS)


def cpu_class(flags: Sequence[str]) -> str:
    """The class that decides which runtime and precision are fastest (``CPU_CLASSES``): AMX tiles, then AVX-512
    bf16 dot products, then the int8 classes; 'unknown' where no flags can be read (not x86, or no /proc)."""
    if not flags:
        return 'unknown'
    if 'amx_bf16' in flags or 'amx_int8' in flags:
        return 'AMX'
    return 'AVX-512 BF16' if 'avx512_bf16' in flags else int8_class(flags)


def describe_flags(flags: Sequence[str]) -> str:
    """``'AVX2 only CPU (flags: avx2 fma)'``: the class and the ISA_FLAGS present, for one-line messages."""
    present = [f for f in ISA_FLAGS if f in flags]
    return f'{cpu_class(flags)} CPU (flags: {" ".join(present) or "none of " + " ".join(ISA_FLAGS)})'


def cpu_isa() -> Dict[str, object]:
    """``{"int8": int8_class, "bf16": bool, "class": cpu_class, "flags": [the ISA_FLAGS present]}`` for reports."""
    flags = cpu_flags()
    present = [f for f in ISA_FLAGS if f in flags]
    return {'int8': int8_class(flags) if flags else 'unknown', 'bf16': has_bf16(flags), 'class': cpu_class(flags),
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

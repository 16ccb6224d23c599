"""What machine a figure was measured on: the CPU's name and the instruction sets that decide reduced-precision
speed, read from the kernel's CPU flags (as ``lscpu`` shows them).

int8 speed-ups depend on them: AVX2 alone multiplies int8 through 16-bit intermediates (about 2x over fp32 for
CNNs), AVX-512 VNNI / AVX-VNNI add a fused int8 dot product (3-4x), AMX adds int8 and bf16 matrix tiles. Every
speed figure is recorded with this.
"""
import os
import platform
import subprocess
from typing import Dict, List, Sequence

#: The flags that matter for reduced-precision inference, in the order they are reported.
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8')


def cpu_flags() -> List[str]:
    """The CPU's flags (/proc/cpuinfo, the same list ``lscpu`` prints); empty where they cannot be read."""
    try:
        with open('/proc/cpuinfo') as info:
            for line in info:
                if line.startswith('flags'):
                    return line.split(':', 1)[1].split()
    except OSError:
        pass
    return []


def int8_class(flags: Sequence[str]) -> str:
    """The best int8 instruction set present: 'AMX', 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 only' or 'no AVX2'."""
    flags = set(flags)
    if 'amx_int8' in flags:
        return 'AMX'
    if 'avx512_vnni' in flags:
        return 'AVX-512 VNNI'
    if 'avx_vnni' in flags:
        return 'AVX-VNNI'
    if 'avx2' in flags:
        return 'AVX2 only'
    return 'no AVX2'


def cpu_isa() -> Dict[str, object]:
    """``{'int8': int8_class, 'bf16': bool, 'flags': [the ISA_FLAGS present]}`` for reports."""
    flags = cpu_flags()
    present = [f for f in ISA_FLAGS if f in flags]
    return {'int8': int8_class(flags) if flags else 'unknown', 'bf16': bool({'avx512_bf16', 'amx_bf16'} & set(flags)),
            'flags': present}


def machine_name() -> str:
    """CPU model (lscpu / /proc/cpuinfo) and logical CPU count."""
    name = ''
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True, timeout=10).stdout
        name = next((line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name')), '')
    except (OSError, subprocess.SubprocessError):
        pass
    if not name:
        try:
            with open('/proc/cpuinfo') as info:
                name = next((line.split(':', 1)[1].strip() for line in info if line.startswith('model name')), '')
        except OSError:
            pass
    return f'{name or platform.processor() or "unknown CPU"}, {os.cpu_count()} logical CPUs'
